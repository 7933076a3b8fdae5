//! The demo daemon's configuration: TOML, validated completely before anything is applied.

use serde::Deserialize;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// The configuration used when the daemon is started without `--config`. `@LOG@` is replaced
/// by a path next to the written config file.
pub const DEFAULT_CONFIG: &str = r#"# demo-daemon configuration. Edit it, then run: ctl reload NAME
# A broken edit is refused and the running configuration stays active.

# Where the seq=N lines go. `ctl rotate NAME` reopens it after it was renamed.
log_file = "@LOG@"

# One line every this many milliseconds (1 to 3600000).
interval_ms = 1000

# Text carried by every line, to see a reload take effect.
message = "hello"
"#;

/// A validated configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Where lines are appended. Relative paths are relative to the config file's directory.
    pub log_file: PathBuf,
    /// Milliseconds between lines.
    pub interval_ms: u64,
    /// Carried by each line.
    pub message: String,
    /// Test hook: a FIFO. A reload of this config, once it is read and valid, logs
    /// `reload: waiting at the gate PATH` and waits until something is written to the FIFO,
    /// then applies (or not, if the caller's deadline passed meanwhile, which it logs as
    /// `reload: the caller's deadline passed at the gate`). Relative to the config file's
    /// directory.
    pub reload_gate: Option<PathBuf>,
    /// Test hook: a FIFO. A reload that applies this config logs `reload: applying, blocked
    /// at the gate PATH` and then blocks its thread (a plain blocking `open` and `read`, as a
    /// slow disk would) until something is written to the FIFO. Shows that `apply` runs off
    /// the runtime: the daemon goes on serving meanwhile. Relative to the config file's
    /// directory.
    pub apply_gate: Option<PathBuf>,
    /// Test hook: a FIFO, like `apply_gate` for the load step: a reload or a check reading
    /// this config logs `load: blocked at the gate PATH` and blocks its thread until something
    /// is written to the FIFO. Shows that `load` runs off the runtime. Relative to the config
    /// file's directory.
    pub load_gate: Option<PathBuf>,
    /// Test hook: a reload of this config panics (the server must contain it).
    pub reload_panics: bool,
    /// Test hook: units of work begun at start-up, before the control socket is bound (so the
    /// first `status` already counts them), that a drain waits for. Each logs `job finished`
    /// when it ends: once something is written to `job_gate`, or never without one.
    pub startup_jobs: u32,
    /// Test hook: a FIFO that ends the start-up jobs when something is written to it.
    /// Relative to the config file's directory.
    pub job_gate: Option<PathBuf>,
    /// Test hook: a FIFO. A `rotate` under this config, once the log file is reopened, logs
    /// `rotate: waiting at the gate PATH` and waits until something is written to the FIFO,
    /// as a daemon's own slow reopening would: a caller with a short deadline gives up first.
    /// Relative to the config file's directory.
    pub rotate_gate: Option<PathBuf>,
}

/// The file as written: [`Config`]'s keys, those that validation checks with where their value
/// is in the file ([`Spanned`]), so that a value out of range is reported with its line and
/// column, as a syntax error is.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    log_file: Spanned<PathBuf>,
    interval_ms: Spanned<u64>,
    #[serde(default)]
    message: Option<Spanned<String>>,
    #[serde(default)]
    reload_gate: Option<PathBuf>,
    #[serde(default)]
    apply_gate: Option<PathBuf>,
    #[serde(default)]
    load_gate: Option<PathBuf>,
    #[serde(default)]
    reload_panics: bool,
    #[serde(default)]
    startup_jobs: u32,
    #[serde(default)]
    job_gate: Option<PathBuf>,
    #[serde(default)]
    rotate_gate: Option<PathBuf>,
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read, or is no regular file, or is too large.
    #[error(transparent)]
    Read(#[from] control_server::config_file::ConfigFileError),
    /// The file is not valid TOML or does not match the schema.
    #[error("invalid config {}: line {line}, column {column}: {message}", .path.display())]
    Parse {
        /// The config file.
        path: PathBuf,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// The parser's message.
        message: String,
    },
    /// A value is out of range.
    #[error(
        "invalid config {}: line {line}, column {column}: {field}: {problem}",
        .path.display()
    )]
    Value {
        /// The config file.
        path: PathBuf,
        /// 1-based line of the value.
        line: usize,
        /// 1-based column where the value starts.
        column: usize,
        /// The offending key.
        field: &'static str,
        /// What is wrong.
        problem: String,
    },
}

/// The keys an operator writes; the others are the tests' hooks, documented in [`Config`] and
/// never offered as what was expected.
const KEYS: &str = "`log_file`, `interval_ms`, `message`";

/// The parser's message, with an unknown key's list of expected keys cut down to [`KEYS`].
fn for_people(message: &str) -> String {
    match message.split_once(", expected ") {
        Some((unknown, _)) if unknown.starts_with("unknown field") => {
            format!(
                "{}; the keys are {KEYS}",
                unknown.replacen("field", "key", 1)
            )
        }
        _ => message.to_owned(),
    }
}

impl Config {
    /// Reads and validates `path`. The read runs off the runtime and refuses a FIFO or device
    /// at the path, so that neither start-up nor `reload` can hang on it.
    pub async fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = control_server::config_file::read_to_string(path).await?;
        Config::parse(&text, path)
    }

    /// Parses and validates `text`, read from `path`.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let file: ConfigFile = toml::from_str(text).map_err(|err| {
            let (line, column) = line_column(text, err.span().map_or(0, |span| span.start));
            ConfigError::Parse {
                path: path.to_owned(),
                line,
                column,
                message: for_people(err.message().trim()).replace('\n', "; "),
            }
        })?;
        // Where the value is, with what is wrong with it.
        let invalid = |field, span: std::ops::Range<usize>, problem: &str| {
            let (line, column) = line_column(text, span.start);
            ConfigError::Value {
                path: path.to_owned(),
                line,
                column,
                field,
                problem: problem.to_owned(),
            }
        };
        let interval = &file.interval_ms;
        if !(1..=3_600_000).contains(interval.get_ref()) {
            return Err(invalid(
                "interval_ms",
                interval.span(),
                "must be between 1 and 3600000",
            ));
        }
        if file.log_file.get_ref().as_os_str().is_empty() {
            return Err(invalid(
                "log_file",
                file.log_file.span(),
                "must not be empty",
            ));
        }
        if let Some(message) = &file.message {
            if message.get_ref().contains('\n') {
                return Err(invalid("message", message.span(), "must be a single line"));
            }
        }
        let mut config = Config {
            log_file: file.log_file.into_inner(),
            interval_ms: file.interval_ms.into_inner(),
            message: file.message.map(Spanned::into_inner).unwrap_or_default(),
            reload_gate: file.reload_gate,
            apply_gate: file.apply_gate,
            load_gate: file.load_gate,
            reload_panics: file.reload_panics,
            startup_jobs: file.startup_jobs,
            job_gate: file.job_gate,
            rotate_gate: file.rotate_gate,
        };
        let base = path.parent().unwrap_or(Path::new("."));
        if config.log_file.is_relative() {
            config.log_file = base.join(&config.log_file);
        }
        for gate in [
            &mut config.reload_gate,
            &mut config.apply_gate,
            &mut config.load_gate,
            &mut config.job_gate,
            &mut config.rotate_gate,
        ]
        .into_iter()
        .flatten()
        {
            if gate.is_relative() {
                *gate = base.join(&*gate);
            }
        }
        Ok(config)
    }
}

/// What a reload, or a check, says changed.
impl control_server::Changes for Config {
    /// What differs from `old`, for the reload and check replies (e.g. `interval_ms 100 ->
    /// 50`).
    fn changes_from(&self, old: &Config) -> String {
        let mut changes = Vec::new();
        if self.log_file != old.log_file {
            changes.push(format!(
                "log_file {} -> {}",
                old.log_file.display(),
                self.log_file.display()
            ));
        }
        if self.interval_ms != old.interval_ms {
            changes.push(format!(
                "interval_ms {} -> {}",
                old.interval_ms, self.interval_ms
            ));
        }
        if self.message != old.message {
            changes.push(format!("message {:?} -> {:?}", old.message, self.message));
        }
        if changes.is_empty() {
            "no change".to_owned()
        } else {
            changes.join(", ")
        }
    }
}

/// 1-based line and column of byte `offset` in `text`: the parser's own message spans several
/// lines with a source excerpt, too much for a one-line reply.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |nl| before.len() - nl - 1)
        + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;
    use control_server::Changes;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/demo/demo.toml"))
    }

    #[test]
    fn the_default_config_is_valid() {
        let c = parse(&DEFAULT_CONFIG.replace("@LOG@", "/tmp/x.log")).unwrap();
        assert_eq!(c.interval_ms, 1000);
        assert_eq!(c.message, "hello");
    }

    #[test]
    fn relative_log_file_is_next_to_the_config() {
        let c = parse("log_file = \"d.log\"\ninterval_ms = 5").unwrap();
        assert_eq!(c.log_file, Path::new("/etc/demo/d.log"));
        let c =
            parse("log_file = \"d.log\"\ninterval_ms = 5\nreload_gate = \"g\"\njob_gate = \"/j\"")
                .unwrap();
        assert_eq!(c.reload_gate.as_deref(), Some(Path::new("/etc/demo/g")));
        assert_eq!(c.job_gate.as_deref(), Some(Path::new("/j")));
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let err = parse("log_file = \"d.log\"\ninterval_ms = = 5\n").unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("invalid config /etc/demo/demo.toml: line 2, column 15: "),
            "{msg}"
        );
        assert!(!msg.contains('\n'), "{msg}");
        let err = parse("log_file = \"d\"\ninterval_ms = \"fast\"\n").unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
    }

    #[test]
    fn typos_and_bad_values_are_refused() {
        assert!(
            parse("log_file = \"d\"\ninterval_msec = 5").is_err(),
            "unknown key"
        );
        assert!(parse("log_file = \"d\"").is_err(), "missing interval_ms");
        assert!(parse("log_file = \"d\"\ninterval_ms = 0").is_err());
        assert!(parse("log_file = \"d\"\ninterval_ms = -3").is_err());
        assert!(parse("log_file = \"\"\ninterval_ms = 5").is_err());
        assert!(parse("log_file = \"d\"\ninterval_ms = 5\nmessage = \"a\\nb\"").is_err());
        let err = parse("log_file = \"d\"\ninterval_ms = 0").unwrap_err();
        assert!(
            err.to_string().contains("interval_ms: must be between"),
            "{err}"
        );
    }

    #[test]
    fn values_out_of_range_name_the_file_line_and_column() {
        for (text, expected) in [
            (
                "log_file = \"d\"\n\n# slower\ninterval_ms   = 3600001\n",
                "line 4, column 17: interval_ms: must be between 1 and 3600000",
            ),
            (
                "interval_ms = 5\nlog_file = \"\"\n",
                "line 2, column 12: log_file: must not be empty",
            ),
            (
                "log_file = \"d\"\ninterval_ms = 5\nmessage = \"a\\nb\"\n",
                "line 3, column 11: message: must be a single line",
            ),
        ] {
            let msg = parse(text).unwrap_err().to_string();
            assert_eq!(
                msg,
                format!("invalid config /etc/demo/demo.toml: {expected}"),
                "{text:?}"
            );
        }
    }

    #[test]
    fn changes_are_described() {
        let a = parse("log_file = \"d\"\ninterval_ms = 100").unwrap();
        let b = parse("log_file = \"d\"\ninterval_ms = 50\nmessage = \"x\"").unwrap();
        assert_eq!(
            b.changes_from(&a),
            "interval_ms 100 -> 50, message \"\" -> \"x\""
        );
        assert_eq!(a.changes_from(&a), "no change");
    }

    #[test]
    fn an_unknown_key_is_named_with_the_keys_an_operator_writes_not_the_test_hooks() {
        let err = parse("log_file = \"d.log\"\nintervall_ms = 5\n").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("line 2, column 1: unknown key `intervall_ms`"),
            "{text}"
        );
        assert!(
            text.contains("the keys are `log_file`, `interval_ms`, `message`"),
            "{text}"
        );
        for hook in [
            "reload_gate",
            "startup_jobs",
            "job_gate",
            "rotate_gate",
            "reload_panics",
        ] {
            assert!(!text.contains(hook), "{hook} offered: {text}");
        }
    }
}
