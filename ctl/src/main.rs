//! `ctl`: tell a daemon to reload, rotate its logs, drain, resume or report status, and exit with a
//! code that says what happened. See `ctl --help`.

mod call;
mod cli;
mod client;
mod complete;
mod doctor;
mod error;
mod exit;
mod human;
mod list;
mod man;
mod ops;
mod output;
mod pidfile;
mod procfs;
mod prometheus;
mod running;
mod signal;
mod ssh;
mod top;

use cli::{Cli, Command};
use client::{Ahead, Session};
use control_api::socket::{Lookup, SocketEnv, Target};
use error::CtlError;
use exit::Exit;
use output::{Output, Reply};
use std::process::ExitCode;
use std::time::Instant;

fn main() -> ExitCode {
    let started = Instant::now();
    // Parsed with `cli::command()`, not `Cli::parse`, so that help is the one with the unused
    // global options hidden.
    let cli = match cli::command().try_get_matches().and_then(|m| {
        let mut cli = <Cli as clap::FromArgMatches>::from_arg_matches(&m)?;
        cli.global.timeout_given = given(&m, "timeout");
        Ok(cli)
    }) {
        Ok(cli) => cli,
        Err(err) => return refused(err),
    };
    // clap sees the conflict only when --json comes after the operation; a global option
    // before it is checked here.
    let prometheus = matches!(&cli.command, Command::Op(cli::Op::Counters(c)) if c.prometheus);
    if prometheus && cli.global.json {
        cli::command()
            .error(
                clap::error::ErrorKind::ArgumentConflict,
                "--prometheus and --json are two output formats; give one",
            )
            .exit();
    }
    // Only an operation on one daemon goes to another host.
    if cli.global.host.is_some() && !matches!(cli.command, Command::Op(_)) {
        return refused(cli::command().error(
            clap::error::ErrorKind::ArgumentConflict,
            "--host goes with an operation on one daemon (status, reload, ...), not with list, \
             signal, completions or man",
        ));
    }
    // One thread: a ctl call is one connection and a few messages; a multi-threaded runtime
    // would only add start-up time.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            output::print_err(&format!("ctl: cannot start: {err}"));
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(cli, started)).into()
}

/// A command line clap did not take. clap prints help and version to stdout (exit 0) and usage
/// errors to stderr (exit 2); under `--json`, given anywhere before `--`, a usage error is one
/// JSON document instead, as every other failure is.
fn refused(err: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    let json = std::env::args_os()
        .skip(1)
        .take_while(|arg| arg != "--")
        .any(|arg| arg == "--json");
    if !json
        || matches!(
            err.kind(),
            ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
        )
    {
        err.exit()
    }
    written(output::usage_json(&err), Exit::Usage, "usage", "").into()
}

async fn run(cli: Cli, started: Instant) -> Exit {
    let global = &cli.global;
    let request = match &cli.command {
        Command::Op(op) => op,
        Command::List => return list::run(global).await,
        Command::Completions { shell } => return completions(*shell),
        Command::Man => return man_page(),
        Command::Complete(a) => return complete_words(a).await,
        Command::Signal(a) => return signalled(global, a),
        Command::Doctor(a) => return doctored(global, a),
        Command::Top(a) => return top::run(global, a).await,
    };
    let (op, given) = (request.name(), request.target());
    let remote = ssh::Remote::from_target(given, global.host.as_deref());
    // A target on another host is shown as its ssh URL, however it was given.
    let url = match &remote {
        Ok(Some(remote)) => remote.url(),
        _ => given.clone(),
    };
    let target = url.as_str();
    let mut out = Output::new(global, op, target);
    match remote {
        Ok(None) => {}
        Ok(Some(remote)) => return remotely(&mut out, &remote, request, started),
        Err(err) => return failed(&out, &err),
    }
    let (parsed, lookup) = match Target::parse(target)
        .and_then(|t| t.lookup(&SocketEnv::from_process()).map(|l| (t, l)))
    {
        Ok(found) => found,
        Err(err) => return failed(&out, &err.into()),
    };
    out.socket = lookup
        .found
        .first()
        .map(|f| &f.path)
        .or(lookup.looked.first())
        .cloned();

    let result = async {
        if lookup.found.is_empty() {
            return Err(CtlError::nothing_found(&lookup));
        }
        let name = match &parsed {
            Target::Name(name) => Some(name.as_str()),
            Target::Path(_) => None,
        };
        let ahead = match request {
            cli::Op::Status(_) => Ahead::Status,
            _ => Ahead::Nothing,
        };
        let session =
            Session::open_first(&lookup.found, name, started, global.timeout, ahead).await?;
        let reply = request.run(&session, global).await?;
        Ok::<_, CtlError>((session.hello, reply, session.path))
    }
    .await;
    let result = result.map_err(|err| judged(err, &parsed, &lookup, target));
    match result {
        Ok((hello, reply, path)) => {
            out.socket = Some(path);
            replied(&out, &hello, &reply)
        }
        Err(err) => failed(&out, &err),
    }
}

/// An operation on another host's daemon, through ssh: shown as a local one is.
fn remotely(out: &mut Output, remote: &ssh::Remote, request: &cli::Op, started: Instant) -> Exit {
    let (socket, result) = ssh::run(remote, request, out.global, started);
    out.socket = socket;
    match result {
        Ok(answer) => replied(out, &answer.hello, &answer.reply),
        Err(err) => failed(out, &err),
    }
}

/// `ctl signal`: asks no daemon, reports like every operation.
fn signalled(global: &cli::Global, args: &signal::SignalArgs) -> Exit {
    let target = args.target();
    let out = Output::new(global, "signal", &target);
    match signal::run(args, global.timeout) {
        Ok((doc, text)) => {
            let what = format!("signal {target}");
            let done = "; the signal was sent";
            written(out.said(doc, &text, 0), Exit::Ok, &what, done)
        }
        Err(err) => failed(&out, &err.into()),
    }
}

/// `ctl doctor`: reads configuration, asks no daemon, reports like every operation; exit 1
/// when a line would kill its target.
fn doctored(global: &cli::Global, args: &doctor::DoctorArgs) -> Exit {
    let target = args.target();
    let out = Output::new(global, "doctor", &target);
    match doctor::run(args) {
        Ok((doc, text, dangerous)) => {
            let exit = if dangerous { Exit::Failed } else { Exit::Ok };
            written(out.said(doc, &text, exit.code()), exit, "doctor", "")
        }
        Err(err) => failed(&out, &err.into()),
    }
}

/// `ctl completions SHELL`. Generated into memory first: clap_complete panics on a write
/// error, and a closed pipe (`ctl completions bash | head`) is not one worth reporting.
fn completions(shell: clap_complete::Shell) -> Exit {
    let script = complete::script(shell, cli::command());
    written(output::write_out(&script), Exit::Ok, "completions", "")
}

/// `ctl man`.
fn man_page() -> Exit {
    match man::render(cli::command()) {
        Ok(page) => written(output::write_out(&page), Exit::Ok, "man", ""),
        Err(err) => {
            output::print_err(&format!("ctl: man: {err}"));
            Exit::Failed
        }
    }
}

/// `ctl __complete`: the candidates for the shell, one per line.
async fn complete_words(a: &cli::CompleteArgs) -> Exit {
    match complete::candidates(complete::slot(a.index, &a.words)).await {
        Some(found) => {
            let text: String = found.iter().map(|c| format!("{c}\n")).collect();
            // A shell that stopped reading has what it wanted.
            let _ = output::write_out(text.as_bytes());
            Exit::Ok
        }
        None => Exit::Failed,
    }
}

/// No socket answers: what the daemon left tells whether it stopped (nothing), died (a socket
/// or lock file nobody holds) or runs where ctl did not look (a lock someone holds); only the
/// first is "missing" for --missing-ok. Any other error is kept.
fn judged(err: CtlError, parsed: &Target, lookup: &Lookup, target: &str) -> CtlError {
    if !matches!(err, CtlError::NoDaemon { .. }) {
        return err;
    }
    let found: Vec<_> = lookup.found.iter().map(|f| f.path.clone()).collect();
    let name = parsed.name().unwrap_or(target).to_owned();
    match running::judge(parsed.name(), &lookup.looked, &found) {
        running::Verdict::Stopped => err,
        running::Verdict::Died(remains) => CtlError::Died { name, remains },
        running::Verdict::Running(processes) => CtlError::Running {
            name,
            looked: lookup.looked.clone(),
            processes,
        },
    }
}

/// Shows a reply and returns its exit code: 1 for a drain that did not complete (past its
/// deadline, or undone by a resume), 74 when the output of a success cannot be written.
fn replied(out: &Output, hello: &control_api::Hello, reply: &Reply) -> Exit {
    let (op, target) = (out.operation, out.target);
    let exit = reply.exit();
    match out.reply(hello, reply, exit.code()) {
        Err(write) if exit != Exit::Ok => {
            output::print_err(&format!("ctl: {op} {target}: {write}"));
            exit
        }
        result => {
            let done = format!("; the {op} itself succeeded");
            written(result, exit, &format!("{op} {target}"), &done)
        }
    }
}

/// Whether the global option `id` was given on the command line, before or after the
/// subcommand.
fn given(matches: &clap::ArgMatches, id: &str) -> bool {
    use clap::parser::ValueSource::CommandLine;
    let on_line = |m: &clap::ArgMatches| m.value_source(id) == Some(CommandLine);
    on_line(matches) || matches.subcommand().is_some_and(|(_, sub)| on_line(sub))
}

/// Reports a failed call and returns its exit code; with `--missing-ok`, a failure that means
/// the daemon was stopped is reported as nothing to do, exit 0 (74 if that cannot be written).
/// If its `--json` document cannot be written, the error is told on stderr instead, and the
/// code stays the failure's own: it is not 0 either way, and says more than 74.
fn failed(out: &Output, err: &CtlError) -> Exit {
    let what = format!("{} {}", out.operation, out.target);
    if out.global.missing_ok && err.is_missing() {
        return written(out.skipped(err), Exit::Ok, &what, "");
    }
    if let Err(write) = out.error(err) {
        output::print_err(&format!("ctl: {what}: {err}"));
        output::print_err(&format!("ctl: {what}: {write}"));
    }
    err.exit()
}

/// `exit`, once the output of a success is written; else reports that it could not be (`done`
/// says what did happen) and returns 74: a caller reading stdout did not get what it asked for.
fn written(result: Result<(), CtlError>, exit: Exit, what: &str, done: &str) -> Exit {
    match result {
        Ok(()) => exit,
        Err(write) => {
            output::print_err(&format!("ctl: {what}: {write}{done}"));
            write.exit()
        }
    }
}
