//! Applying `Command::ConfigEntrySet` and `Command::ConfigEntryDelete`: the config-entry table with Consul's
//! check-and-set rules, every entry validated again from its body.

use super::State;
use super::acl::touch;
use crate::command::CommandResult;
use crate::config_entry::{ConfigEntry, check_kind, normalize_name};
use crate::watch::{Changes, Table};

impl State {
    /// The entries of `kind`, by name.
    pub fn config_entries(&self, kind: &str) -> Vec<&ConfigEntry> {
        self.config_entries
            .range((kind.to_owned(), String::new())..)
            .take_while(|(k, _)| k.0 == kind)
            .map(|(_, e)| e)
            .collect()
    }

    /// One entry, if stored.
    pub fn config_entry(&self, kind: &str, name: &str) -> Option<&ConfigEntry> {
        self.config_entries.get(&(kind.to_owned(), name.to_owned()))
    }

    /// Stores `entry` (re-read from its body, so nothing unvalidated is stored) unless `cas` fails: `Some(0)` writes
    /// only a new entry, `Some(n)` only over the entry whose `modify_index` is `n`; `Bool(false)` then.
    pub(super) fn config_entry_set(
        &mut self,
        index: u64,
        entry: &ConfigEntry,
        cas: Option<u64>,
        changes: &mut Changes,
    ) -> CommandResult {
        let body = match serde_json::from_str(&entry.body) {
            Ok(body) => body,
            Err(err) => return CommandResult::Rejected(format!("config entry body is not JSON: {err}")),
        };
        let checked = match ConfigEntry::from_json(&body) {
            Ok(checked) => checked,
            Err(why) => return CommandResult::Rejected(why),
        };
        if checked.kind != entry.kind || checked.name != entry.name {
            return CommandResult::Rejected("config entry kind or name differs from its body".into());
        }
        let key = (checked.kind.clone(), checked.name.clone());
        let existing = self.config_entries.get(&key);
        let holds = match (cas, existing) {
            (None, _) => true,
            (Some(expected), None) => expected == 0,
            (Some(expected), Some(e)) => expected != 0 && e.modify_index == expected,
        };
        if !holds {
            return CommandResult::Bool(false);
        }
        let create_index = existing.map_or(index, |e| e.create_index);
        self.config_entries.insert(key, ConfigEntry { create_index, modify_index: index, ..checked });
        touch(self, index, Table::ConfigEntries, changes);
        CommandResult::Bool(true)
    }

    /// Deletes an entry: without `cas` whether or not it exists (`Bool(true)`); with it only when its `modify_index`
    /// is `cas`, which 0 never is (Consul's delete-cas).
    pub(super) fn config_entry_delete(
        &mut self,
        index: u64,
        kind: &str,
        name: &str,
        cas: Option<u64>,
        changes: &mut Changes,
    ) -> CommandResult {
        if let Err(why) = check_kind(kind) {
            return CommandResult::Rejected(why.to_string());
        }
        let name = match normalize_name(kind, name) {
            Ok(name) => name,
            Err(why) => return CommandResult::Rejected(why),
        };
        let key = (kind.to_owned(), name);
        let existing = self.config_entries.get(&key);
        if let Some(expected) = cas
            && (expected == 0 || existing.is_none_or(|e| e.modify_index != expected))
        {
            return CommandResult::Bool(false);
        }
        if self.config_entries.remove(&key).is_some() {
            touch(self, index, Table::ConfigEntries, changes);
        }
        CommandResult::Bool(true)
    }
}
