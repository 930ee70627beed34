//! Applying `Command::AutopilotSet`: the autopilot configuration record with its check-and-set.

use super::State;
use super::acl::touch;
use crate::autopilot::AutopilotConfig;
use crate::command::CommandResult;
use crate::watch::{Changes, Table};

impl State {
    /// The stored autopilot configuration; `None` until a leader seeds it or an operator sets it.
    pub fn autopilot_config(&self) -> Option<&AutopilotConfig> {
        self.autopilot.as_ref()
    }

    /// Stores `config` unless `cas` names another `modify_index` than the stored one (0: only when none is stored);
    /// `Bool(false)` then, with nothing changed.
    pub(super) fn autopilot_set(
        &mut self,
        index: u64,
        config: &AutopilotConfig,
        cas: Option<u64>,
        changes: &mut Changes,
    ) -> CommandResult {
        let current = self.autopilot.as_ref().map_or(0, |c| c.modify_index);
        if cas.is_some_and(|expected| expected != current) {
            return CommandResult::Bool(false);
        }
        if config.last_contact_threshold_ms == 0 {
            return CommandResult::Rejected("LastContactThreshold must be greater than 0".into());
        }
        let create_index = self.autopilot.as_ref().map_or(index, |c| c.create_index);
        self.autopilot = Some(AutopilotConfig { create_index, modify_index: index, ..config.clone() });
        touch(self, index, Table::Autopilot, changes);
        CommandResult::Bool(true)
    }
}

#[cfg(test)]
mod tests {
    //! The check-and-set and the indexes.
    use super::*;
    use crate::command::Command;

    fn set(state: &mut State, index: u64, cas: Option<u64>, min_quorum: u32) -> CommandResult {
        let config = AutopilotConfig { min_quorum, ..AutopilotConfig::default() };
        state.apply(index, &Command::AutopilotSet { config, cas }).0
    }

    #[test]
    fn autopilot_config_is_set_with_cas_on_its_modify_index() {
        let mut state = State::default();
        assert!(state.autopilot_config().is_none());
        assert_eq!(set(&mut state, 5, Some(0), 3), CommandResult::Bool(true));
        assert_eq!(set(&mut state, 6, Some(0), 4), CommandResult::Bool(false), "0 means only when absent");
        let stored = state.autopilot_config().unwrap().clone();
        assert_eq!((stored.min_quorum, stored.create_index, stored.modify_index), (3, 5, 5));
        assert_eq!(set(&mut state, 7, Some(4), 4), CommandResult::Bool(false));
        assert_eq!(set(&mut state, 8, Some(5), 4), CommandResult::Bool(true));
        assert_eq!(set(&mut state, 9, None, 5), CommandResult::Bool(true));
        let stored = state.autopilot_config().unwrap();
        assert_eq!((stored.min_quorum, stored.create_index, stored.modify_index), (5, 5, 9));
        assert_eq!(state.table(Table::Autopilot), 9);
        let bad = AutopilotConfig { last_contact_threshold_ms: 0, ..AutopilotConfig::default() };
        let res = state.apply(10, &Command::AutopilotSet { config: bad, cas: None }).0;
        assert!(matches!(res, CommandResult::Rejected(_)));
        assert_eq!(state.autopilot_config().unwrap().modify_index, 9, "a refusal changes nothing");
    }

    #[test]
    fn autopilot_config_survives_a_snapshot() {
        let mut state = State::default();
        set(&mut state, 3, None, 2);
        let decoded = State::decode_snapshot(&state.encode_snapshot()).unwrap();
        assert_eq!(decoded.autopilot_config(), state.autopilot_config());
        assert_eq!(decoded.table(Table::Autopilot), 3);
        assert_eq!(decoded.encode_snapshot(), state.encode_snapshot());

        // A version-6 snapshot is version 10's body without the cluster-job tail (three empty tables, an empty
        // index map and three zero indexes: seven bytes), the config-entry, prepared-query and coordinates tails
        // (none, index 0: two bytes each), version 5's is version 6's without the autopilot tail, and version 4's is
        // version 5's without the restore staging (`None`: one byte): 5 and 4 decode with no configuration.
        let bytes = state.encode_snapshot();
        let coordinates_tail = postcard::to_allocvec(&(Vec::<crate::NodeCoordinate>::new(), 0u64)).unwrap();
        let mut v6 = bytes.clone();
        v6[7] = 6;
        v6.truncate(v6.len() - 7 - 2 - 2 - coordinates_tail.len());
        assert_eq!(State::decode_snapshot(&v6).unwrap(), state);
        let tail = postcard::to_allocvec(&(state.autopilot.clone(), 3u64)).unwrap();
        let mut v5 = v6;
        v5[7] = 5;
        v5.truncate(v5.len() - tail.len());
        let old = State::decode_snapshot(&v5).unwrap();
        assert!(old.autopilot_config().is_none());
        let mut v4 = v5;
        v4[7] = 4;
        v4.truncate(v4.len() - 1);
        assert!(State::decode_snapshot(&v4).unwrap().autopilot_config().is_none());
        let mut newer = bytes;
        newer[7] = 12;
        assert!(State::decode_snapshot(&newer).is_err(), "format 12 is not this build's");
    }
}
