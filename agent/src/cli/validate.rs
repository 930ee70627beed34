//! `roster validate FILE|DIR...`: loads config files and directories with exactly the agent's loader
//! ([`crate::config::load`]), binding and writing nothing, and reports every problem it finds at once.
//!
//! Only the files speak: the `ROSTER_*` environment is not read, so a file judged valid here is valid
//! wherever it is deployed, as with Consul's `validate`.

use std::path::PathBuf;

use clap::Args;

use super::AgentArgs;
use crate::config::{ConfigErrors, EmptyEnv};

/// `roster validate`.
#[derive(Debug, Clone, Default, Args)]
pub struct ValidateArgs {
    /// Print nothing when the configuration is valid.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new(), value_name = "BOOL")]
    pub quiet: bool,
    /// Read every file as this format (json or hcl), whatever its name, as the agent's `-config-format`.
    #[arg(long, value_name = "FORMAT")]
    pub config_format: Option<String>,
    /// Config files (`*.json`, `*.hcl`) and directories (every such file in them), as `-config-file`/`-config-dir`
    /// take them.
    #[arg(value_name = "FILE_OR_DIRECTORY")]
    pub paths: Vec<PathBuf>,
}

/// Runs `roster validate`: 0 when the configuration loads, 1 with every problem listed on stderr otherwise.
pub(super) fn run(args: &ValidateArgs) -> anyhow::Result<i32> {
    if args.paths.is_empty() {
        eprintln!("Must specify at least one config file or directory");
        return Ok(1);
    }
    let agent = AgentArgs { config_format: args.config_format.clone(), ..agent_args(&args.paths) };
    match crate::config::load(&agent, &EmptyEnv) {
        Ok(_) => {
            if !args.quiet {
                println!("Configuration is valid!");
            }
            Ok(0)
        }
        Err(errors) => {
            eprint!("{}", failure_text(&errors));
            Ok(1)
        }
    }
}

/// The agent flags that load `paths`: directories as `-config-dir`, anything else as `-config-file` (a missing
/// path is then reported by the loader as unreadable).
fn agent_args(paths: &[PathBuf]) -> AgentArgs {
    let (config_dir, config_file) = paths.iter().cloned().partition(|path| path.is_dir());
    AgentArgs { config_file, config_dir, ..AgentArgs::default() }
}

/// Every problem, in go-multierror's layout, which is how Consul's `validate` lists several.
fn failure_text(errors: &ConfigErrors) -> String {
    let problems = &errors.0;
    let mut text = match problems.len() {
        1 => "Config validation failed: 1 error occurred:\n".to_owned(),
        n => format!("Config validation failed: {n} errors occurred:\n"),
    };
    for problem in problems {
        text.push_str(&format!("\t* {problem}\n"));
    }
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_is_listed() {
        let errors = ConfigErrors(vec!["a.json: unknown key \"bogus\"".into(), "ports.dns: invalid".into()]);
        assert_eq!(
            failure_text(&errors),
            "Config validation failed: 2 errors occurred:\n\t* a.json: unknown key \"bogus\"\n\t* ports.dns: invalid\n\n"
        );
    }

    #[test]
    fn directories_and_files_go_to_their_own_flags() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("a.json");
        let args = agent_args(&[dir.path().to_path_buf(), file.clone()]);
        assert_eq!(args.config_dir, vec![dir.path().to_path_buf()]);
        assert_eq!(args.config_file, vec![file]);
        Ok(())
    }
}
