//! Where a daemon's control socket lives, and how a `ctl` target names one.
//!
//! # The convention
//!
//! A daemon named NAME that is given no socket path listens at the first of these that applies:
//!
//! 1. `$CTL_SOCKET_DIR/NAME.sock` when that variable is set; nothing else is looked at.
//! 2. As root: `RUN/ctl/NAME.sock`, the shared directory.
//! 3. When `RUN/NAME` is a directory the daemon's user owns (what systemd's
//!    `RuntimeDirectory=NAME` makes for a unit with `User=`): `RUN/NAME/ctl.sock`.
//! 4. `$XDG_RUNTIME_DIR/ctl/NAME.sock`, for a daemon of a user's own session.
//!
//! RUN is `/run`, or `$CTL_RUN_DIR`: that variable exists so that tests and containers can
//! move the whole convention somewhere else; a host has no reason to set it.
//!
//! `ctl` looks in the same places in the same order ([`SocketEnv::places`]: 2, 3, and 4 when
//! not root) and talks to the first socket that accepts, so a daemon moved from root to its own
//! user is found without a setting on either side.
//!
//! # The trust rule
//!
//! A socket found by name in RUN (places 2 and 3) is used only if nobody but root and the
//! socket's owner could have put it there ([`check_trust`]):
//!
//! - RUN is owned by root or by the caller, and the socket's directory (`RUN/ctl` or
//!   `RUN/NAME`) by root or by the socket's owner;
//! - neither is writable by its group or by others.
//!
//! So another user cannot plant a socket for root's `ctl rotate NAME` to talk to: only root can
//! create `RUN/NAME`, and only its owner can create files in it. A daemon never picks place 3
//! when `ctl` would refuse it: it fails to start instead, naming the directory. Places 1 and 4,
//! and explicit paths, are the caller's own word and are not checked.
//!
//! The rule judges what `ctl` connects to, never a link to it ([`open_checked`]): the socket's
//! directory is opened without following a link and judged on that descriptor, the socket's
//! entry is read in it without following a link (a symbolic link there is refused: its owner
//! could point it at another daemon's socket), and the connection goes through the descriptor
//! ([`Checked::connect_path`]), so what was judged is what is connected to. Whoever owns the
//! directory can still swap the entry between the check and the connect; so the peer that
//! answers must be root or the directory's owner ([`Checked::allows_peer`]), and a client that
//! found it by name checks that it answers as NAME.

use rustix::fs::FileType;
use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Environment variable that overrides the socket directory for both sides.
pub const SOCKET_DIR_ENV: &str = "CTL_SOCKET_DIR";
/// Environment variable that moves the convention's RUN directory (default `/run`), for tests
/// and containers.
pub const RUN_DIR_ENV: &str = "CTL_RUN_DIR";
/// The RUN directory when `CTL_RUN_DIR` is not set.
pub const DEFAULT_RUN_DIR: &str = "/run";
/// Name of the shared socket directory in RUN.
pub const SHARED_DIR_NAME: &str = "ctl";
/// File name of the socket in a daemon's own runtime directory (`RUN/NAME/ctl.sock`).
pub const RUNTIME_DIR_SOCKET: &str = "ctl.sock";
/// File name suffix of control sockets.
pub const SOCKET_SUFFIX: &str = ".sock";
/// Longest daemon name. A socket path must fit in `sun_path` (108 bytes on Linux).
pub const MAX_NAME_LEN: usize = 64;

/// Why no socket path could be derived.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SocketPathError {
    /// The name cannot be used in a socket file name.
    #[error("invalid daemon name {name:?}: {reason}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Not root, no runtime directory of its own, and neither `CTL_SOCKET_DIR` nor
    /// `XDG_RUNTIME_DIR` is set.
    #[error(
        "cannot tell where to put the control socket: not running as root, {} is not a \
         directory owned by uid {uid} (systemd makes one with RuntimeDirectory={name} and \
         User=), and neither CTL_SOCKET_DIR nor XDG_RUNTIME_DIR is set; create that directory, \
         set CTL_SOCKET_DIR on both sides, or give a socket path", .runtime_dir.display(),
        name = .runtime_dir.file_name().unwrap_or_default().to_string_lossy()
    )]
    NoSocketDir {
        /// The runtime directory looked for, `RUN/NAME`.
        runtime_dir: PathBuf,
        /// The daemon's effective uid.
        uid: u32,
    },
    /// The daemon's own runtime directory exists but `ctl` would not trust a socket in it.
    #[error(
        "{} is this daemon's runtime directory, but ctl would not trust a socket in it: {why}; \
         make it writable by its owner only (systemd: RuntimeDirectoryMode=0755), or give a \
         socket path", .dir.display()
    )]
    UntrustedRuntimeDir {
        /// `RUN/NAME`.
        dir: PathBuf,
        /// What the trust rule objects to.
        why: Distrust,
    },
}

/// What the trust rule objects to in a socket found by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Distrust {
    /// The RUN directory is writable by its group or by others.
    #[error("the run directory is writable by other users (mode {mode:o})")]
    RunDirWritable {
        /// Its permission bits.
        mode: u32,
    },
    /// The RUN directory is owned by neither root nor the caller.
    #[error("the run directory is owned by uid {owner}, neither root nor uid {caller}")]
    RunDirOwner {
        /// Its owner.
        owner: u32,
        /// The caller's effective uid.
        caller: u32,
    },
    /// The socket's directory is writable by its group or by others.
    #[error(
        "its directory is writable by other users (mode {mode:o}), who could have put it there"
    )]
    DirWritable {
        /// The directory's permission bits.
        mode: u32,
    },
    /// The socket's directory is owned by neither root nor the socket's owner.
    #[error("its directory is owned by uid {dir}, but the socket by uid {socket}")]
    DirOwner {
        /// The directory's owner.
        dir: u32,
        /// The socket's owner.
        socket: u32,
    },
    /// The socket's entry is a symbolic link: whoever owns the directory could point it at
    /// another daemon's socket.
    #[error(
        "it is a symbolic link, which ctl does not follow here: whoever owns its directory \
         could point it at another daemon's socket"
    )]
    Symlink,
    /// The socket's directory is a symbolic link, or not a directory.
    #[error("its directory is a symbolic link or not a directory, which ctl does not follow here")]
    DirNotDirectory,
    /// What answered on the socket runs as neither root nor the directory's owner: the entry
    /// was changed after it was checked.
    #[error(
        "the process answering on it runs as uid {peer}, neither root nor uid {dir}, who owns \
         its directory, nor uid {socket}, who owned the socket when it was checked"
    )]
    PeerOwner {
        /// The answering process's uid, from the connection's peer credentials.
        peer: u32,
        /// The directory's owner.
        dir: u32,
        /// The socket's owner, as checked.
        socket: u32,
    },
}

/// A socket found by name that the trust rule refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "not trusting {}: {why}; give the socket path explicitly if you trust it anyway",
    .path.display()
)]
pub struct Untrusted {
    /// The socket.
    pub path: PathBuf,
    /// Why.
    pub why: Distrust,
}

/// Who owns a file and who may write it: what the trust rule reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ownership {
    /// Owner uid.
    pub uid: u32,
    /// Permission bits (`st_mode & 0o7777`).
    pub mode: u32,
}

impl Ownership {
    /// Reads it from what `stat` says.
    fn of(st: &rustix::fs::Stat) -> Ownership {
        Ownership {
            uid: st.st_uid,
            mode: st.st_mode & 0o7777,
        }
    }
}

/// The trust rule (see the [module docs](self)): whether a socket owned by `socket.uid`, in a
/// directory `dir` directly under the RUN directory `run`, may be used by a caller of uid
/// `caller`.
pub fn check_trust(
    run: Ownership,
    dir: Ownership,
    socket: Ownership,
    caller: u32,
) -> Result<(), Distrust> {
    // Group or other write: someone besides the owner can create entries, and the sticky bit
    // does not stop them from creating a new name.
    const OTHERS_WRITE: u32 = 0o022;
    if run.mode & OTHERS_WRITE != 0 {
        return Err(Distrust::RunDirWritable { mode: run.mode });
    }
    if run.uid != 0 && run.uid != caller {
        return Err(Distrust::RunDirOwner {
            owner: run.uid,
            caller,
        });
    }
    if dir.mode & OTHERS_WRITE != 0 {
        return Err(Distrust::DirWritable { mode: dir.mode });
    }
    if dir.uid != 0 && dir.uid != socket.uid {
        return Err(Distrust::DirOwner {
            dir: dir.uid,
            socket: socket.uid,
        });
    }
    Ok(())
}

/// Why a socket in a checked place cannot be connected to.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// Nothing there (or its directory cannot be opened): no daemon has started there, or it
    /// stopped. Connecting would say the same.
    #[error("cannot open {}", .path.display())]
    Missing {
        /// The socket.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Something is there, but the trust rule refuses it.
    #[error(transparent)]
    Untrusted(#[from] Untrusted),
}

/// A socket in a place the trust rule covers, judged through its directory's descriptor and
/// held by it (see the [module docs](self)).
#[derive(Debug)]
pub struct Checked {
    /// The socket's directory, opened without following a link (`O_PATH`).
    dir: OwnedFd,
    /// The socket's file name in it.
    file: OsString,
    /// The directory's owner: who may change the entry.
    dir_owner: u32,
    /// The socket's owner as checked: in a directory of root's, the daemon root let listen
    /// there (elsewhere the trust rule makes it the directory's owner).
    socket_owner: u32,
}

impl Checked {
    /// The path to connect to: the socket's entry in the directory held open, through
    /// `/proc/self/fd`, so that no link put in the original path since it was checked is
    /// followed. Valid while `self` lives.
    pub fn connect_path(&self) -> PathBuf {
        let mut path = PathBuf::from(format!("/proc/self/fd/{}", self.dir.as_raw_fd()));
        path.push(&self.file);
        path
    }

    /// The directory's owner.
    pub fn dir_owner(&self) -> u32 {
        self.dir_owner
    }

    /// Whether a process of uid `peer` (the connection's peer credentials) answering on the
    /// socket may be the daemon: root, the directory's owner, or the socket's owner as checked.
    /// Nobody else could have made the entry that was connected to, even one swapped after the
    /// check.
    pub fn allows_peer(&self, peer: u32) -> Result<(), Distrust> {
        if peer == 0 || peer == self.dir_owner || peer == self.socket_owner {
            Ok(())
        } else {
            Err(Distrust::PeerOwner {
                peer,
                dir: self.dir_owner,
                socket: self.socket_owner,
            })
        }
    }
}

/// Applies the trust rule to the socket `path` in a directory directly under RUN, for a caller
/// of uid `caller`, judging what is there and not a link to it: the directory is opened with
/// `O_NOFOLLOW|O_DIRECTORY` and judged by its descriptor, the socket's entry is read in it with
/// `AT_SYMLINK_NOFOLLOW`. The RUN directory itself is the caller's configuration (`/run` or
/// `CTL_RUN_DIR`) and is followed. Whatever is at the entry, if not a link, passes as far as its
/// type goes: connecting says what is wrong with it.
pub fn open_checked(path: &Path, caller: u32) -> Result<Checked, CheckError> {
    use rustix::fs::{AtFlags, Mode, OFlags};
    let missing = |source: io::Error| CheckError::Missing {
        path: path.to_owned(),
        source,
    };
    let untrusted = |why| {
        CheckError::Untrusted(Untrusted {
            path: path.to_owned(),
            why,
        })
    };
    let (Some(file), Some(dir)) = (path.file_name(), path.parent()) else {
        return Err(missing(io::ErrorKind::NotFound.into()));
    };
    let (run, dir_name) = match (dir.parent(), dir.file_name()) {
        (Some(run), Some(name)) => (run, name),
        _ => return Err(missing(io::ErrorKind::NotFound.into())),
    };
    let run = if run.as_os_str().is_empty() {
        Path::new(".")
    } else {
        run
    };
    let path_flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let run_fd = rustix::fs::open(run, path_flags, Mode::empty()).map_err(|e| missing(e.into()))?;
    let dir_fd = match rustix::fs::openat(
        &run_fd,
        dir_name,
        path_flags | OFlags::NOFOLLOW,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        // ELOOP: a link; ENOTDIR: not a directory (or, with O_PATH, a link to one).
        Err(e) if e == rustix::io::Errno::LOOP || e == rustix::io::Errno::NOTDIR => {
            return Err(untrusted(Distrust::DirNotDirectory))
        }
        Err(e) => return Err(missing(e.into())),
    };
    let entry = rustix::fs::statat(&dir_fd, file, AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| missing(e.into()))?;
    if FileType::from_raw_mode(entry.st_mode) == FileType::Symlink {
        return Err(untrusted(Distrust::Symlink));
    }
    let run_st = rustix::fs::fstat(&run_fd).map_err(|e| missing(e.into()))?;
    let dir_st = rustix::fs::fstat(&dir_fd).map_err(|e| missing(e.into()))?;
    check_trust(
        Ownership::of(&run_st),
        Ownership::of(&dir_st),
        Ownership::of(&entry),
        caller,
    )
    .map_err(untrusted)?;
    Ok(Checked {
        dir: dir_fd,
        file: file.to_owned(),
        dir_owner: dir_st.st_uid,
        socket_owner: entry.st_uid,
    })
}

/// One of the convention's places for a daemon's socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// `$CTL_SOCKET_DIR/NAME.sock`: set by whoever runs the process; not checked.
    Override,
    /// `RUN/ctl/NAME.sock`: daemons running as root.
    Shared,
    /// `RUN/NAME/ctl.sock`: a daemon's own runtime directory (`RuntimeDirectory=NAME`).
    RuntimeDir,
    /// `$XDG_RUNTIME_DIR/ctl/NAME.sock`: a daemon of the caller's own session; not checked.
    UserSession,
}

impl Place {
    /// Whether a socket found here must pass [`check_trust`].
    pub fn is_checked(self) -> bool {
        matches!(self, Place::Shared | Place::RuntimeDir)
    }
}

/// A place where something exists that a client may connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The socket.
    pub path: PathBuf,
    /// Whether the trust rule covers it: then the client connects only through
    /// [`open_checked`], which judges it again at that moment, and checks who answers.
    pub checked: bool,
}

impl Found {
    /// A path taken as given: not checked.
    pub fn given(path: impl Into<PathBuf>) -> Found {
        Found {
            path: path.into(),
            checked: false,
        }
    }
}

/// What a client found where a target may listen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lookup {
    /// Every path looked at, in order.
    pub looked: Vec<PathBuf>,
    /// The places where something exists that may be connected to, in order.
    pub found: Vec<Found>,
    /// Sockets found but refused by the trust rule.
    pub untrusted: Vec<Untrusted>,
}

/// A socket `ctl list` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// The daemon's name, as the place implies it.
    pub name: String,
    /// The socket.
    pub path: PathBuf,
    /// `Err` when the trust rule refuses it: it is shown, not connected to.
    pub trust: Result<(), Untrusted>,
    /// Whether the trust rule covers it (a socket in RUN): a client connects to it through
    /// [`open_checked`].
    pub checked: bool,
}

impl Listed {
    /// Where a client connects to it.
    pub fn found(&self) -> Found {
        Found {
            path: self.path.clone(),
            checked: self.checked,
        }
    }
}

/// The parts of the process environment the convention depends on. Kept as a value so the
/// convention can be tested without touching the real environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SocketEnv {
    /// Value of `CTL_SOCKET_DIR`.
    pub ctl_socket_dir: Option<OsString>,
    /// Value of `XDG_RUNTIME_DIR`.
    pub xdg_runtime_dir: Option<OsString>,
    /// Value of `CTL_RUN_DIR`.
    pub ctl_run_dir: Option<OsString>,
    /// The effective uid.
    pub uid: u32,
}

/// An empty variable counts as unset, as shells often export them empty; a relative one too
/// (the XDG spec says so for `XDG_RUNTIME_DIR`, and a relative RUN would depend on the cwd).
fn absolute(v: &Option<OsString>) -> Option<PathBuf> {
    v.as_ref()
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
}

impl SocketEnv {
    /// Reads the current process's environment and effective uid.
    pub fn from_process() -> Self {
        SocketEnv {
            ctl_socket_dir: std::env::var_os(SOCKET_DIR_ENV),
            xdg_runtime_dir: std::env::var_os("XDG_RUNTIME_DIR"),
            ctl_run_dir: std::env::var_os(RUN_DIR_ENV),
            uid: rustix::process::geteuid().as_raw(),
        }
    }

    /// Whether the effective uid is root's.
    pub fn is_root(&self) -> bool {
        self.uid == 0
    }

    /// The RUN directory: `$CTL_RUN_DIR`, else `/run`.
    pub fn run_dir(&self) -> PathBuf {
        absolute(&self.ctl_run_dir).unwrap_or_else(|| PathBuf::from(DEFAULT_RUN_DIR))
    }

    /// `CTL_SOCKET_DIR`, when set: then a name is looked up there only.
    pub fn override_dir(&self) -> Option<PathBuf> {
        // Only emptiness counts as unset here: a relative CTL_SOCKET_DIR is taken as given, as
        // it always was.
        self.ctl_socket_dir
            .as_ref()
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    }

    /// `$XDG_RUNTIME_DIR/ctl`, the caller's session directory; none for root, whose daemons
    /// never listen in a user's session directory.
    fn session_dir(&self) -> Option<PathBuf> {
        let xdg = absolute(&self.xdg_runtime_dir).filter(|_| !self.is_root());
        xdg.map(|xdg| xdg.join("ctl"))
    }

    /// The places a client looks for the daemon `name`, in order. Reads no file.
    pub fn places(&self, name: &str) -> Result<Vec<(Place, PathBuf)>, SocketPathError> {
        validate_name(name)?;
        let file = format!("{name}{SOCKET_SUFFIX}");
        if let Some(dir) = self.override_dir() {
            return Ok(vec![(Place::Override, dir.join(file))]);
        }
        let run = self.run_dir();
        let mut places = vec![
            (Place::Shared, run.join(SHARED_DIR_NAME).join(&file)),
            (Place::RuntimeDir, run.join(name).join(RUNTIME_DIR_SOCKET)),
        ];
        if let Some(dir) = self.session_dir() {
            places.push((Place::UserSession, dir.join(file)));
        }
        Ok(places)
    }

    /// The socket path of the daemon `name`, as the daemon chooses it (see the module docs).
    /// Reads the metadata of `RUN/NAME` when not root.
    pub fn socket_path(&self, name: &str) -> Result<PathBuf, SocketPathError> {
        validate_name(name)?;
        let file = format!("{name}{SOCKET_SUFFIX}");
        if let Some(dir) = self.override_dir() {
            return Ok(dir.join(file));
        }
        let run = self.run_dir();
        if self.is_root() {
            return Ok(run.join(SHARED_DIR_NAME).join(file));
        }
        let own = run.join(name);
        if let Ok(st) = rustix::fs::stat(&own) {
            if FileType::from_raw_mode(st.st_mode) == FileType::Directory && st.st_uid == self.uid {
                // Judged as root's ctl will judge it, so that the daemon fails here, naming
                // the directory, rather than listen where logrotate's ctl refuses to talk.
                let run_meta = rustix::fs::stat(&run).map(|st| Ownership::of(&st));
                let socket = Ownership {
                    uid: self.uid,
                    mode: 0o600,
                };
                let verdict = match run_meta {
                    Ok(run_meta) => check_trust(run_meta, Ownership::of(&st), socket, 0),
                    // RUN cannot be read but RUN/NAME can: nothing to object to that we can see.
                    Err(_) => Ok(()),
                };
                return match verdict {
                    Ok(()) => Ok(own.join(RUNTIME_DIR_SOCKET)),
                    Err(why) => Err(SocketPathError::UntrustedRuntimeDir { dir: own, why }),
                };
            }
        }
        match self.session_dir() {
            Some(dir) => Ok(dir.join(file)),
            None => Err(SocketPathError::NoSocketDir {
                runtime_dir: own,
                uid: self.uid,
            }),
        }
    }

    /// Looks for the daemon `name` in its [places](Self::places): what exists there, and which
    /// sockets the trust rule refuses.
    pub fn lookup(&self, name: &str) -> Result<Lookup, SocketPathError> {
        let mut lookup = Lookup::default();
        for (place, path) in self.places(name)? {
            lookup.looked.push(path.clone());
            // Whatever is there (a socket or not: connecting says what is wrong with it).
            if place.is_checked() {
                match open_checked(&path, self.uid) {
                    Ok(_) => {}
                    Err(CheckError::Missing { .. }) => continue,
                    Err(CheckError::Untrusted(untrusted)) => {
                        lookup.untrusted.push(untrusted);
                        continue;
                    }
                }
            } else if std::fs::symlink_metadata(&path).is_err() {
                continue;
            }
            lookup.found.push(Found {
                path,
                checked: place.is_checked(),
            });
        }
        Ok(lookup)
    }

    /// Every socket in the places of [`places`](Self::places), for any name: with
    /// `CTL_SOCKET_DIR`, its `*.sock`; else `RUN/ctl/*.sock`, `RUN/*/ctl.sock` and, when not
    /// root, `$XDG_RUNTIME_DIR/ctl/*.sock`. Sorted by name, then in the order of the places.
    /// Fails only if the `CTL_SOCKET_DIR` or `RUN/ctl` directory exists and cannot be read.
    pub fn list(&self) -> Result<Vec<Listed>, ListError> {
        use std::os::unix::fs::FileTypeExt;
        let is_socket_or_link = |p: &Path| {
            std::fs::symlink_metadata(p)
                .is_ok_and(|m| m.file_type().is_socket() || m.file_type().is_symlink())
        };
        let sockets_in = |dir: &Path| -> Result<Vec<(String, PathBuf)>, ListError> {
            match std::fs::read_dir(dir) {
                Ok(entries) => Ok(entries
                    .filter_map(Result::ok)
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_socket()))
                    .filter_map(|e| {
                        let path = e.path();
                        let name = name_from_path(&path)?.to_owned();
                        Some((name, path))
                    })
                    .collect()),
                // No directory: no daemon has ever started there.
                Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
                Err(source) => Err(ListError {
                    dir: dir.to_owned(),
                    source,
                }),
            }
        };
        let unchecked = |(name, path): (String, PathBuf)| Listed {
            name,
            path,
            trust: Ok(()),
            checked: false,
        };
        if let Some(dir) = self.override_dir() {
            let listed = sockets_in(&dir)?.into_iter().map(unchecked).collect();
            return Ok(sorted(listed));
        }
        let run = self.run_dir();
        let mut checked = sockets_in(&run.join(SHARED_DIR_NAME))?;
        // RUN/*/ctl.sock: one lstat per directory in RUN; unreadable ones are skipped, as their
        // sockets could not be connected to either.
        let entries = std::fs::read_dir(&run).into_iter().flatten();
        checked.extend(entries.filter_map(Result::ok).filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let path = entry.path().join(RUNTIME_DIR_SOCKET);
            // A link there is shown too, as the trust rule's refusal it is.
            (validate_name(&name).is_ok() && is_socket_or_link(&path)).then_some((name, path))
        }));
        let mut out = Vec::new();
        for (name, path) in checked {
            let trust = match open_checked(&path, self.uid) {
                Ok(_) => Ok(()),
                // Gone since it was listed.
                Err(CheckError::Missing { .. }) => continue,
                Err(CheckError::Untrusted(untrusted)) => Err(untrusted),
            };
            out.push(Listed {
                name,
                path,
                trust,
                checked: true,
            });
        }
        // A user's own session directory: not being there is no failure of the listing.
        let session = self
            .session_dir()
            .map(|dir| sockets_in(&dir).unwrap_or_default());
        out.extend(session.into_iter().flatten().map(unchecked));
        Ok(sorted(out))
    }

    /// The directories [`list`](Self::list) looks in, for people: `RUN/*` stands for every
    /// daemon's own runtime directory.
    pub fn list_dirs(&self) -> Vec<PathBuf> {
        if let Some(dir) = self.override_dir() {
            return vec![dir];
        }
        let run = self.run_dir();
        let mut dirs = vec![run.join(SHARED_DIR_NAME), run.join("*")];
        dirs.extend(self.session_dir());
        dirs
    }
}

/// `listed` sorted by name, without a path twice.
fn sorted(mut listed: Vec<Listed>) -> Vec<Listed> {
    // Stable: one name's sockets stay in the order ctl tries them.
    listed.sort_by(|a, b| a.name.cmp(&b.name));
    // `RUN/ctl/ctl.sock` is in both places.
    let mut seen = std::collections::HashSet::new();
    listed.retain(|l| seen.insert(l.path.clone()));
    listed
}

/// A socket directory that exists but cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {}", .dir.display())]
pub struct ListError {
    /// The directory.
    pub dir: PathBuf,
    /// The OS error.
    #[source]
    pub source: io::Error,
}

/// The socket path of the daemon `name` in this process's environment, as the daemon chooses
/// it.
pub fn default_socket_path(name: &str) -> Result<PathBuf, SocketPathError> {
    SocketEnv::from_process().socket_path(name)
}

/// Checks that `name` can be a daemon name: 1 to 64 characters from `A-Z a-z 0-9 _ - . @`,
/// not starting with `.` or `-`.
pub fn validate_name(name: &str) -> Result<(), SocketPathError> {
    let reason = if name.is_empty() {
        "it is empty"
    } else if name.len() > MAX_NAME_LEN {
        "it is longer than 64 characters"
    } else if name.starts_with(['.', '-']) {
        "it starts with '.' or '-'"
    } else if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '@'))
    {
        "use only letters, digits and _ - . @"
    } else {
        return Ok(());
    };
    Err(SocketPathError::InvalidName {
        name: name.to_owned(),
        reason,
    })
}

/// What a `ctl` invocation points at: a daemon name or a socket path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A daemon name, resolved by the convention.
    Name(String),
    /// An explicit socket path: anything containing `/`.
    Path(PathBuf),
}

impl Target {
    /// Reads a target: anything containing `/` is a path, anything else must be a valid name.
    pub fn parse(s: &str) -> Result<Self, SocketPathError> {
        if s.contains('/') {
            Ok(Target::Path(PathBuf::from(s)))
        } else {
            validate_name(s)?;
            Ok(Target::Name(s.to_owned()))
        }
    }

    /// Where a client looks for this target in `env`: a name's [places](SocketEnv::places),
    /// or the path itself, which is taken as given.
    pub fn lookup(&self, env: &SocketEnv) -> Result<Lookup, SocketPathError> {
        match self {
            Target::Name(name) => env.lookup(name),
            Target::Path(path) => Ok(Lookup {
                looked: vec![path.clone()],
                found: vec![Found::given(path.clone())],
                untrusted: Vec::new(),
            }),
        }
    }

    /// The daemon name this target names or implies (see [`implied_name`]).
    pub fn name(&self) -> Option<&str> {
        match self {
            Target::Name(name) => Some(name),
            Target::Path(path) => implied_name(path),
        }
    }
}

/// The daemon name a socket file `NAME.sock` implies (`/run/ctl/web.sock` → `web`).
pub fn name_from_path(path: &Path) -> Option<&str> {
    path.file_name()?.to_str()?.strip_suffix(SOCKET_SUFFIX)
}

/// The daemon name a socket path implies in either place: `RUN/NAME/ctl.sock` → `NAME`,
/// `DIR/NAME.sock` → `NAME`.
pub fn implied_name(path: &Path) -> Option<&str> {
    let name = if path.file_name()? == RUNTIME_DIR_SOCKET {
        path.parent()?.file_name()?.to_str()?
    } else {
        name_from_path(path)?
    };
    validate_name(name).ok().map(|()| name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn env(ctl: Option<&str>, xdg: Option<&str>, uid: u32) -> SocketEnv {
        SocketEnv {
            ctl_socket_dir: ctl.map(OsString::from),
            xdg_runtime_dir: xdg.map(OsString::from),
            ctl_run_dir: None,
            uid,
        }
    }

    fn paths(places: Vec<(Place, PathBuf)>) -> Vec<(Place, String)> {
        places
            .into_iter()
            .map(|(p, path)| (p, path.display().to_string()))
            .collect()
    }

    #[test]
    fn ctl_socket_dir_wins_for_everyone() {
        for uid in [0, 1000] {
            let e = env(Some("/tmp/s"), Some("/run/user/1000"), uid);
            assert_eq!(e.socket_path("web").unwrap(), Path::new("/tmp/s/web.sock"));
            assert_eq!(
                paths(e.places("web").unwrap()),
                [(Place::Override, "/tmp/s/web.sock".to_owned())]
            );
        }
    }

    #[test]
    fn root_uses_run_ctl() {
        let p = env(None, Some("/run/user/0"), 0).socket_path("web");
        assert_eq!(p.unwrap(), Path::new("/run/ctl/web.sock"));
    }

    #[test]
    fn clients_look_in_the_shared_dir_then_the_runtime_dir_then_their_session() {
        let root = env(None, Some("/run/user/0"), 0);
        assert_eq!(
            paths(root.places("web").unwrap()),
            [
                (Place::Shared, "/run/ctl/web.sock".to_owned()),
                (Place::RuntimeDir, "/run/web/ctl.sock".to_owned()),
            ]
        );
        let user = env(None, Some("/run/user/1000"), 1000);
        assert_eq!(
            paths(user.places("web").unwrap()),
            [
                (Place::Shared, "/run/ctl/web.sock".to_owned()),
                (Place::RuntimeDir, "/run/web/ctl.sock".to_owned()),
                (Place::UserSession, "/run/user/1000/ctl/web.sock".to_owned()),
            ]
        );
        // A system daemon's user has no session: its places are still known.
        assert_eq!(env(None, None, 1000).places("web").unwrap().len(), 2);
    }

    #[test]
    fn ctl_run_dir_moves_the_convention() {
        let mut e = env(None, None, 0);
        e.ctl_run_dir = Some("/tmp/r".into());
        assert_eq!(
            e.socket_path("web").unwrap(),
            Path::new("/tmp/r/ctl/web.sock")
        );
        assert_eq!(
            paths(e.places("web").unwrap())[1],
            (Place::RuntimeDir, "/tmp/r/web/ctl.sock".to_owned())
        );
        for ignored in ["", "relative"] {
            e.ctl_run_dir = Some(ignored.into());
            assert_eq!(e.run_dir(), Path::new("/run"));
        }
    }

    #[test]
    fn empty_or_relative_variables_count_as_unset() {
        let p = env(Some(""), Some("/run/user/1000"), 1000).socket_path("web");
        assert_eq!(p.unwrap(), Path::new("/run/user/1000/ctl/web.sock"));
        for xdg in [None, Some(""), Some("relative/dir")] {
            assert!(matches!(
                env(None, xdg, 1000).socket_path("web"),
                Err(SocketPathError::NoSocketDir { uid: 1000, .. })
            ));
        }
    }

    /// A RUN directory in a tempdir, and the uid that plays the daemon's user: our own, or,
    /// as root, nobody (root's daemons never look at their runtime directory).
    fn run_dir() -> (tempfile::TempDir, SocketEnv) {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let uid = match rustix::process::geteuid().as_raw() {
            0 => 65534,
            uid => uid,
        };
        let e = SocketEnv {
            ctl_run_dir: Some(tmp.path().into()),
            uid,
            ..SocketEnv::default()
        };
        (tmp, e)
    }

    /// Makes `RUN/name` owned by `uid` with `mode`, as systemd's `RuntimeDirectory=` would.
    fn runtime_dir(e: &SocketEnv, name: &str, uid: u32, mode: u32) -> PathBuf {
        let dir = e.run_dir().join(name);
        std::fs::create_dir(&dir).unwrap();
        if rustix::process::geteuid().is_root() {
            let uid = rustix::fs::Uid::from_raw(uid);
            rustix::fs::chown(&dir, Some(uid), None).unwrap();
        }
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).unwrap();
        dir
    }

    #[test]
    fn a_daemon_as_its_own_user_listens_in_its_runtime_dir_before_its_session() {
        let (_tmp, mut e) = run_dir();
        e.xdg_runtime_dir = Some("/run/user/1000".into());
        // Not there yet: the session directory.
        assert_eq!(
            e.socket_path("web").unwrap(),
            Path::new("/run/user/1000/ctl/web.sock")
        );
        let dir = runtime_dir(&e, "web", e.uid, 0o755);
        assert_eq!(e.socket_path("web").unwrap(), dir.join("ctl.sock"));
        // Another daemon's runtime directory is not taken.
        assert_eq!(
            e.socket_path("other").unwrap(),
            Path::new("/run/user/1000/ctl/other.sock")
        );
    }

    #[test]
    fn a_daemon_refuses_a_runtime_dir_ctl_would_not_trust() {
        let (_tmp, e) = run_dir();
        let dir = runtime_dir(&e, "web", e.uid, 0o775);
        assert_eq!(
            e.socket_path("web"),
            Err(SocketPathError::UntrustedRuntimeDir {
                dir,
                why: Distrust::DirWritable { mode: 0o775 }
            })
        );
    }

    #[test]
    fn the_trust_rule() {
        let o = |uid, mode| Ownership { uid, mode };
        let run = o(0, 0o755);
        let sock = o(1000, 0o600);
        // The daemon's own directory, root's, and mode 0700: trusted.
        for dir in [o(1000, 0o755), o(0, 0o755), o(1000, 0o700)] {
            assert_eq!(check_trust(run, dir, sock, 0), Ok(()), "{dir:?}");
        }
        // Another user's directory, or one its group or anyone may write to (sticky or not).
        assert_eq!(
            check_trust(run, o(1001, 0o755), sock, 0),
            Err(Distrust::DirOwner {
                dir: 1001,
                socket: 1000
            })
        );
        for mode in [0o775, 0o757, 0o1777] {
            assert_eq!(
                check_trust(run, o(1000, mode), sock, 0),
                Err(Distrust::DirWritable { mode })
            );
        }
        // A RUN that others may write to, or that belongs to someone else than root or us.
        assert_eq!(
            check_trust(o(0, 0o1777), o(1000, 0o755), sock, 0),
            Err(Distrust::RunDirWritable { mode: 0o1777 })
        );
        assert_eq!(
            check_trust(o(1001, 0o755), o(1000, 0o755), sock, 0),
            Err(Distrust::RunDirOwner {
                owner: 1001,
                caller: 0
            })
        );
        assert_eq!(
            check_trust(o(1001, 0o755), o(1001, 0o755), o(1001, 0), 1001),
            Ok(())
        );
    }

    #[test]
    fn lookup_finds_trusted_sockets_in_order_and_names_the_others() {
        let (_tmp, mut e) = run_dir();
        let run = e.run_dir();
        let bind = |p: &Path| std::os::unix::net::UnixListener::bind(p).unwrap();
        let open = runtime_dir(&e, "web", e.uid, 0o777);
        let _planted = bind(&open.join("ctl.sock"));
        let own = runtime_dir(&e, "api", e.uid, 0o755);
        let _api = bind(&own.join("ctl.sock"));
        if rustix::process::geteuid().is_root() {
            // As the daemon running as that user would have made it.
            let uid = rustix::fs::Uid::from_raw(e.uid);
            rustix::fs::chownat(
                rustix::fs::CWD,
                own.join("ctl.sock"),
                Some(uid),
                None,
                rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
            )
            .unwrap();
        }
        std::fs::create_dir(run.join("ctl")).unwrap();
        let _shared = bind(&run.join("ctl/api.sock"));
        // The caller is whoever runs ctl; as root, root.
        e.uid = rustix::process::geteuid().as_raw();

        let web = e.lookup("web").unwrap();
        assert_eq!(web.found, Vec::<Found>::new());
        assert_eq!(
            web.untrusted,
            [Untrusted {
                path: open.join("ctl.sock"),
                why: Distrust::DirWritable { mode: 0o777 }
            }]
        );
        let api = e.lookup("api").unwrap();
        let checked = |path: PathBuf| Found {
            path,
            checked: true,
        };
        assert_eq!(
            api.found,
            [
                checked(run.join("ctl/api.sock")),
                checked(own.join("ctl.sock"))
            ]
        );
        assert_eq!(
            api.looked.len(),
            2 + usize::from(!e.is_root() && e.xdg_runtime_dir.is_some())
        );

        let listed: Vec<_> = e
            .list()
            .unwrap()
            .into_iter()
            .map(|l| (l.name, l.path, l.trust.is_ok()))
            .collect();
        assert_eq!(
            listed,
            [
                ("api".to_owned(), run.join("ctl/api.sock"), true),
                ("api".to_owned(), own.join("ctl.sock"), true),
                ("web".to_owned(), open.join("ctl.sock"), false),
            ]
        );
    }

    #[test]
    fn a_link_is_judged_as_a_link_and_never_followed() {
        let (_tmp, mut e) = run_dir();
        let run = e.run_dir();
        std::fs::create_dir(run.join("ctl")).unwrap();
        let _other = std::os::unix::net::UnixListener::bind(run.join("ctl/other.sock")).unwrap();
        // The daemon's user points its socket's name at root's daemon.
        let own = runtime_dir(&e, "xd", e.uid, 0o755);
        std::os::unix::fs::symlink("../ctl/other.sock", own.join("ctl.sock")).unwrap();
        // Its directory a link to root's directory.
        std::os::unix::fs::symlink(run.join("ctl"), run.join("ln")).unwrap();
        e.uid = rustix::process::geteuid().as_raw();

        let xd = e.lookup("xd").unwrap();
        assert_eq!(xd.found, []);
        assert_eq!(
            xd.untrusted,
            [Untrusted {
                path: own.join("ctl.sock"),
                why: Distrust::Symlink
            }]
        );
        assert!(matches!(
            open_checked(&run.join("ln/other.sock"), e.uid),
            Err(CheckError::Untrusted(Untrusted {
                why: Distrust::DirNotDirectory,
                ..
            }))
        ));
        let listed = e.list().unwrap();
        let xd = listed.iter().find(|l| l.name == "xd").unwrap();
        assert!(
            matches!(&xd.trust, Err(u) if u.why == Distrust::Symlink),
            "{xd:?}"
        );

        // What passes is reached through the directory's descriptor.
        let checked = open_checked(&run.join("ctl/other.sock"), e.uid).unwrap();
        let path = checked.connect_path();
        assert!(path.starts_with("/proc/self/fd/"), "{path:?}");
        std::os::unix::net::UnixStream::connect(&path).unwrap();
        assert_eq!(checked.allows_peer(0), Ok(()));
        assert!(matches!(
            checked.allows_peer(4321),
            Err(Distrust::PeerOwner { peer: 4321, .. })
        ));
        assert!(matches!(
            open_checked(&run.join("ctl/none.sock"), e.uid),
            Err(CheckError::Missing { .. })
        ));
    }

    #[test]
    fn names_are_checked() {
        for good in ["web", "my-daemon", "unit@2", "a.b_c", &"x".repeat(64)] {
            assert_eq!(validate_name(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            ".hidden",
            "-flag",
            "sp ace",
            "dir/x",
            "ünï",
            &"x".repeat(65),
        ] {
            assert!(validate_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn targets_with_a_slash_are_paths() {
        assert_eq!(
            Target::parse("./x.sock").unwrap(),
            Target::Path("./x.sock".into())
        );
        assert_eq!(Target::parse("web").unwrap(), Target::Name("web".into()));
        assert!(Target::parse("bad name").is_err());
        let e = env(Some("/s"), None, 1000);
        assert_eq!(
            Target::parse("/abs/p.sock")
                .unwrap()
                .lookup(&e)
                .unwrap()
                .found,
            [Found::given("/abs/p.sock")]
        );
    }

    #[test]
    fn name_is_read_back_from_a_conventional_path() {
        assert_eq!(name_from_path(Path::new("/run/ctl/web.sock")), Some("web"));
        assert_eq!(name_from_path(Path::new("/tmp/other")), None);
        assert_eq!(implied_name(Path::new("/run/web/ctl.sock")), Some("web"));
        assert_eq!(implied_name(Path::new("/run/ctl/web.sock")), Some("web"));
        assert_eq!(implied_name(Path::new("/tmp/other")), None);
    }
}
