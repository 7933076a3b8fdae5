#!/usr/bin/python
# -*- coding: utf-8 -*-

# Copyright: the ctl project
# SPDX-License-Identifier: MIT OR Apache-2.0

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ctl
short_description: Control a daemon through its ctl socket (status, check, reload, rotate, drain, log-level, ...)
version_added: "0.1.0"
description:
  - Runs the C(ctl) command-line client on the managed host with C(--json) and returns the daemon's
    typed reply. C(ctl) talks to the daemon over a Unix socket and reports back, where a signal
    (C(pkill -HUP)) reports nothing.
  - The task fails when C(ctl) exits non-zero, with the error's kind and message and C(ctl)'s
    exit code in O(rc), for example a configuration the daemon refused (C(rc=1), the message
    names the file, line and reason), or no daemon listening (C(rc=69)).
  - C(changed) is true when a reload moved the configuration generation, a rotate reopened a log
    file that had been renamed (not when it only reports a reopen the daemon had already made by
    itself, watching its log file; see O(operation)), a drain started, a resume undid a drain, a
    log-level set a filter other than the one in effect, or a command ran that the daemon says
    changed something (or, when the daemon does not say, that is not read-only); false for
    status, check, counters, describe, hello, reading the log filter, an unchanged reload, a
    read-only command, and a command the daemon says changed nothing (it found what was asked
    for already so). So a second run of the same play is all C(ok).
options:
  operation:
    description:
      - What to do.
      - V(status) reads the daemon's state. V(check) validates the configuration on disk and
        applies nothing. V(reload) re-reads the configuration; a refused one keeps the old one
        active. V(rotate) reopens the log files (after they were renamed); it reads the daemon's
        status first, and a log file whose path already named the file the daemon had open
        (a daemon that watches its log file reopens it by itself) is reported in O(ignore:result)
        but is no change. V(drain) stops taking
        new work and waits for the work in flight, up to O(timeout). V(resume) undoes a drain.
        V(call) runs one of the daemon's own commands (O(command), O(args)); it is C(changed)
        as the daemon says (C(ctl --json call) shows its C(changed)); a command that found what
        it was asked for already so is C(ok). A daemon or command that does not say is
        C(changed) unless the command is read-only. V(counters) reads the daemon's counters.
        V(log-level) reads the daemon's log filter, or sets O(filter), C(changed) only when the
        filter in effect was another one. V(describe) lists the daemon's operations and
        commands, V(hello) its protocol version and operations; neither changes anything.
        V(doctor) reads the host's logrotate, cron and systemd configuration for C(kill),
        C(pkill) and C(killall) lines that would kill their target (C(ctl doctor)), and fails
        the host when one would; it needs no O(target) and changes nothing.
    type: str
    required: true
    choices: [status, check, reload, rotate, drain, resume, call, counters, log-level, describe, hello, doctor]
  target:
    description:
      - The daemon's name, looked up by the socket convention (see O(socket_dir)), or a socket
        path (anything containing C(/)). Required for every operation but V(doctor), which
        ignores it.
    type: str
  timeout:
    description:
      - How long C(ctl) waits for the answer (C(ctl --timeout)), for example C(20s) or C(500ms).
        The deadline travels to the daemon. Without it, C(ctl)'s default (30s).
    type: str
  missing_ok:
    description:
      - When the daemon was stopped (it left no socket), or C(ctl) is not installed on the host,
        succeed without doing anything (C(ctl --missing-ok)) instead of failing with C(rc=69).
        The task is then C(ok), not C(changed), and O(ignore:missing) says why. A daemon that
        died (it left a stale socket or a lock file nobody holds), one that runs but does not
        answer where C(ctl) looks, and errors from a running daemon still fail; O(ignore:state)
        tells them apart.
    type: bool
    default: false
  root:
    description:
      - For O(operation=doctor), read the configuration under this directory instead of C(/)
        (C(ctl doctor --root)); the processes judged are the host's.
    type: path
  command:
    description:
      - The daemon's own command to run, for O(operation=call) (where it is required).
    type: str
  args:
    description:
      - Arguments of O(command), for O(operation=call), as a dictionary (sent as
        C(ctl call ... --args JSON); the daemon's schema types them).
    type: dict
  prefix:
    description:
      - For O(operation=counters), only the counters whose name starts with this.
    type: str
  filter:
    description:
      - For O(operation=log-level), the log filter to put in effect (for example C(debug) or
        C(info,my_daemon::net=trace)); without it the task only reads the filter in effect.
      - The module reads the filter first and sets it only when it differs; the task is
        C(changed) only when the daemon then reports that the filter before was another one
        (it compares the two in its own spelling). A filter the daemon refuses fails the task
        (C(rc=1)) and the old one stays. Setting needs the C(admin) access level.
    type: str
  ctl_path:
    description:
      - The C(ctl) binary, as a name looked up in C(PATH) or as a path.
    type: str
    default: ctl
  socket_dir:
    description:
      - Look for the daemon's socket in this directory (sets C(CTL_SOCKET_DIR) for C(ctl)).
        Without it, C(ctl)'s own convention applies (C(/run/ctl), C(/run/NAME/ctl.sock), ...).
    type: path
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details:
      - O(operation=reload) runs C(ctl check) instead, which validates the configuration and
        applies nothing; C(changed) says whether a reload would change something, and a
        refused configuration fails the task as the reload would. A daemon without C(check)
        (C(rc=3)) makes the task skipped.
      - O(operation=rotate), O(operation=drain) and O(operation=resume) read the daemon's status
        instead (so a missing daemon fails, or is skipped with O(missing_ok), as it would) and
        report C(changed) as a prediction; a drain would start when the daemon is not draining,
        a resume would undo a drain in progress.
      - For O(operation=rotate), a rotate changes something when a log file is reopened as
        another file. The module compares the file at each logged path (its device and inode)
        with the files the daemon has open, read from C(/proc/PID/fd) for the pid the daemon
        reports. C(changed) is true when a logged path is missing or is not a file the daemon has open
        (logrotate renamed it), not changed when every one is. Where C(/proc/PID/fd) cannot be
        read (not Linux, or the task's user may not look at the daemon's descriptors; use
        C(become)), which file the daemon writes to is unknown, and C(changed) is true when the
        daemon has any log file (the message says the prediction is a guess).
      - O(operation=call) asks the daemon's C(describe) first. A read-only command runs as usual;
        any other does not run, and C(changed) is then true. When C(describe) fails (no daemon,
        rc=69, skipped with O(missing_ok); permission denied, rc=77), the task reports that
        failure as the real call would; a command the daemon does not list fails as
        C(unsupported) (rc=3), as the real call would.
      - O(operation=log-level) with O(filter) reads the filter in effect and sets nothing;
        C(changed) predicts whether it would change, comparing the directives of the two filters
        (separated by commas, in any order, levels in any case). A filter the daemon would
        refuse cannot be told without setting it.
      - O(operation=status), O(operation=check), O(operation=counters), O(operation=describe),
        O(operation=hello) and O(operation=log-level) without O(filter) change nothing and run
        as usual.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
  platform:
    description: Target OS/families that can be operated against.
    support: N/A
    platforms: posix
notes:
  - C(ctl) must be installed on the managed host; the module runs it there, so the socket is
    reached locally and C(ctl)'s own checks (peer credentials, trusted directories) apply to
    the user the task runs as (use C(become) for a daemon running as another user).
  - The C(--json) document, the exit codes and the targets are described in C(docs/operators.md)
    of the ctl repository; the rolling-reload and rotate playbooks are in this collection's
    C(playbooks) directory.
  - A reply whose task failed still carries what C(ctl) printed, for example a drain whose
    deadline passed with work in flight (C(rc=1), O(ignore:result.in_flight)).
requirements:
  - ctl on the managed host
author:
  - the ctl project
"""

EXAMPLES = r"""
- name: Before a release, find the kill -HUP lines that would kill a daemon on this host
  ctl.fleet.ctl:
    operation: doctor
  become: true

- name: Reload web; a refused configuration fails the task and keeps the old one active
  ctl.fleet.ctl:
    operation: reload
    target: web
    timeout: 20s

- name: Validate the configuration on disk without applying it
  ctl.fleet.ctl:
    operation: check
    target: web

- name: Reopen the log files on every host where the daemon runs
  ctl.fleet.ctl:
    operation: rotate
    target: web
    missing_ok: true

- name: Read a daemon listening in a directory of its own
  ctl.fleet.ctl:
    operation: status
    target: web
    socket_dir: /srv/web/run
  register: web_status

- name: Run one of the daemon's own commands
  ctl.fleet.ctl:
    operation: call
    target: demo
    command: set-message
    args:
      text: hello

- name: Debug logging on every host; ok where it is already on
  ctl.fleet.ctl:
    operation: log-level
    target: web
    filter: debug

- name: What the daemon serves
  ctl.fleet.ctl:
    operation: describe
    target: web
  register: web_operations

- name: Drain before maintenance, waiting at most two minutes
  ctl.fleet.ctl:
    operation: drain
    target: web
    timeout: 2m
"""

RETURN = r"""
rc:
  description: C(ctl)'s exit code (0 success, 1 the daemon ran it and it failed, 2 usage, 3 unsupported,
    69 no daemon, 75 deadline passed, 76 protocol error, 77 permission denied).
  returned: always
  type: int
  sample: 0
cmd:
  description: The C(ctl) command that was run (the last one, when the module ran more than one).
  returned: always
  type: list
  elements: str
  sample: [/usr/local/bin/ctl, --json, reload, web]
operation:
  description: The operation C(ctl) ran (V(check) for a reload in check mode, V(status) for a rotate,
    drain or resume in check mode, V(describe) for a call in check mode whose C(describe) failed).
  returned: always
  type: str
  sample: reload
target:
  description: The target as given.
  returned: always
  type: str
  sample: web
socket:
  description: The socket C(ctl) talked to, or looked for.
  returned: when ctl printed its JSON document
  type: str
  sample: /run/ctl/web.sock
daemon:
  description: Who answered (C(name), C(version), C(pid), C(protocol)).
  returned: when a daemon answered
  type: dict
  sample: {"name": "web", "version": "2.1.0", "pid": 812, "protocol": 1}
result:
  description:
    - The daemon's reply, as C(ctl --json) prints it (see the operators' guide, C(--json)).
    - For V(reload) C(generation), C(summary), C(joined), C(unchanged); for V(check) C(generation)
      (the active one), C(summary), C(unchanged); for V(rotate) C(files), each with C(path),
      C(old) and C(new) (C(dev), C(ino)), C(bytes_to_old), C(error); for V(drain) C(completed),
      C(in_flight), C(resumed); for V(resume) C(was_draining); for V(counters) C(counters), each
      with C(name), C(kind), C(value), C(help); for V(log-level) C(filter) (in effect now) and
      C(previous) (before, when this task set it); for V(describe) C(operations), each with
      C(name), C(doc), C(access), C(kind), C(args), C(reply); for V(hello) C(protocol), C(name),
      C(version), C(pid), C(operations); for V(call) the command's reply.
    - In check mode, for V(rotate), V(drain) and V(resume), the daemon's status.
  returned: when a daemon answered
  type: dict
  sample: {"generation": 7, "summary": "workers 4 -> 8", "joined": false, "unchanged": false}
error:
  description: Why C(ctl) failed. C(kind) is one of C(usage), C(no_daemon), C(died), C(not_listening),
    C(untrusted), C(denied), C(timeout), C(incompatible), C(protocol), C(unsupported), C(failed),
    C(busy), C(shutting_down), C(unrecognized); C(detail) is the daemon's typed error, or null.
  returned: failure
  type: dict
  sample: {"kind": "failed", "message": "new configuration refused, the running one stays active: invalid config /etc/web.toml: line 3, column 10: ...", "detail": null}
state:
  description:
    - What became of the daemon, from what C(ctl) found. V(running) (a daemon answered, even
      with an error), V(stopped) (no socket left, it was stopped), V(died) (it left a stale socket
      or a lock file nobody holds, so it crashed or was killed), V(elsewhere) (it runs, holding its
      lock, but does not answer where C(ctl) looks), V(hung) (no answer before the deadline),
      V(not installed) (no C(ctl) on the host), V(unknown) (refused, untrusted, or a reply
      that could not be read).
  returned: always
  type: str
  sample: died
said_changed:
  description: For V(call), whether the daemon said the command changed anything (C(changed) of
    C(ctl --json call)); null when it did not say, and O(ignore:changed) then follows the
    command's access level.
  returned: when a call ran
  type: bool
  sample: false
missing:
  description: Why nothing was done, when no daemon was listening and O(missing_ok) was set.
  returned: when no daemon was there and missing_ok is true
  type: str
  sample: "no daemon at /run/ctl/web.sock: no socket there; is it running?"
"""

import json
import os

from ansible.module_utils.basic import AnsibleModule

# Operations that change nothing: run as they are, in check mode too, and never `changed`.
READ_ONLY = ("status", "check", "counters", "describe", "hello", "doctor")

OPERATIONS = ["status", "check", "reload", "rotate", "drain", "resume", "call", "counters", "log-level", "describe", "hello", "doctor"]


# Module level, so that a test can hold it against DOCUMENTATION.
ARGUMENT_SPEC = dict(
    operation=dict(type="str", required=True, choices=OPERATIONS),
    target=dict(type="str"),
    timeout=dict(type="str"),
    missing_ok=dict(type="bool", default=False),
    command=dict(type="str"),
    args=dict(type="dict"),
    prefix=dict(type="str"),
    root=dict(type="path"),
    filter=dict(type="str"),
    ctl_path=dict(type="str", default="ctl"),
    socket_dir=dict(type="path"),
)


def main():
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        required_if=[("operation", "call", ["command"])],
        supports_check_mode=True,
    )
    Ctl(module).run()


class Ctl:
    """One task: one or two runs of `ctl --json`, and what they mean for Ansible."""

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.binary = self._find_binary(self.params["ctl_path"])
        self.last_cmd = []

    def _find_binary(self, path):
        if "/" not in path:
            found = self.module.get_bin_path(path, required=False)
            if found:
                return found
            # No ctl on this host: no daemon that embeds it either, as far as this task knows.
            message = "%s is not installed on this host (not in PATH)" % path
            if self.params["missing_ok"]:
                self.module.exit_json(
                    changed=False,
                    state="not installed",
                    missing=message,
                    msg="%s (missing_ok): nothing to do" % message,
                    operation=self.params["operation"],
                    target=self.params["target"],
                )
            self.module.fail_json(
                msg=message,
                state="not installed",
                rc=None,
                cmd=[path],
                operation=self.params["operation"],
                target=self.params["target"],
            )
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            self.module.fail_json(msg="ctl_path %s is not an executable file" % path, rc=None, cmd=[path])
        return path

    def ctl(self, operation, extra=()):
        """Runs `ctl --json OPERATION TARGET EXTRA...`; returns (rc, document or None, stderr)."""
        cmd = [self.binary, "--json"]
        if self.params["timeout"]:
            cmd += ["--timeout", self.params["timeout"]]
        if self.params["missing_ok"]:
            cmd.append("--missing-ok")
        cmd.append(operation)
        if operation != "doctor":
            cmd.append(self.params["target"])
        cmd += list(extra)
        env = {}
        if self.params["socket_dir"]:
            env["CTL_SOCKET_DIR"] = self.params["socket_dir"]
        self.last_cmd = cmd
        rc, out, err = self.module.run_command(cmd, environ_update=env, check_rc=False)
        try:
            doc = json.loads(out)
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            doc = None
        return rc, doc, err

    def run(self):
        op = self.params["operation"]
        if op != "doctor" and not self.params["target"]:
            self.module.fail_json(msg="operation=%s needs a target" % op, rc=None)
        if op == "doctor":
            extra = ["--root", self.params["root"]] if self.params["root"] else []
            return self.report(op, *self.ctl(op, extra), changed=CHANGED[op])
        if op == "log-level":
            return self.log_level()
        if self.module.check_mode and op not in READ_ONLY:
            return self.predict(op)
        if op == "call":
            return self.call()
        if op == "rotate":
            return self.rotate()
        if op == "drain":
            # A drain's reply does not say whether it started one: ask first.
            draining = self.draining()
            return self.report(op, *self.ctl(op), changed=lambda result: draining is not True)
        extra = []
        if op == "counters" and self.params["prefix"]:
            extra.append(self.params["prefix"])
        return self.report(op, *self.ctl(op, extra), changed=CHANGED[op])

    def call(self):
        """Changed as the daemon says; when it does not say, unless the command is read-only."""
        command = self.params["command"]
        extra = [command]
        if self.params["args"] is not None:
            extra += ["--args", json.dumps(self.params["args"])]
        rc, doc, stderr = self.ctl("call", extra)
        said = (doc or {}).get("changed")
        if not isinstance(said, bool):
            said = None
        extra_ret = {"said_changed": said} if doc and "result" in doc else {}
        if said is not None:
            changed = lambda result: said
        elif rc == 0 and doc and "result" in doc:
            cmd = self.last_cmd
            read_only = self.read_only_command(command)
            # `cmd` names the call, not the describe asked after it.
            self.last_cmd = cmd
            changed = lambda result: not read_only
        else:
            changed = lambda result: False
        return self.report("call", rc, doc, stderr, changed=changed, extra=extra_ret)

    def log_level(self):
        """Reads the filter; with `filter`, sets it unless it is in effect already (in check
        mode, predicts whether setting it would change it)."""
        wanted = self.params["filter"]
        if wanted is None:
            return self.report("log-level", *self.ctl("log-level"), changed=lambda result: False)
        rc, doc, stderr = self.ctl("log-level")
        result = (doc or {}).get("result")
        if rc != 0 or not isinstance(result, dict) or "skipped" in doc:
            # What setting it would meet first: no daemon (ok with missing_ok), denied, ...
            return self.report("log-level", rc, doc, stderr, changed=lambda result: False)
        current = result.get("filter")
        if self.module.check_mode:
            return self.report(
                "log-level",
                rc,
                doc,
                stderr,
                changed=lambda result: not same_filter(current, wanted),
                note=lambda changed: "check mode: read the log filter `%s`, set nothing; setting `%s` would %s"
                % (current, wanted, "change it" if changed else "change nothing"),
            )
        if current == wanted:
            return self.report("log-level", rc, doc, stderr, changed=lambda result: False)
        return self.report("log-level", *self.ctl("log-level", [wanted]), changed=filter_changed)

    def read_only_command(self, command):
        """Whether the daemon describes `command` as read-only (access `read`). Unknown (an
        older daemon without `describe`, an unknown command) counts as not read-only."""
        rc, doc, _ = self.ctl("describe")
        if rc != 0 or not doc or not isinstance(doc.get("result"), dict):
            return False
        for entry in doc["result"].get("operations") or []:
            if entry.get("name") == command and entry.get("kind") == "command":
                return entry.get("access") == "read"
        return False

    def draining(self):
        """The daemon's `draining` flag, or None when its status cannot be read."""
        rc, doc, _ = self.ctl("status")
        if rc != 0 or not doc or not isinstance(doc.get("result"), dict):
            return None
        return doc["result"].get("draining")

    def predict(self, op):
        """Check mode for an operation that would change something: run nothing that does."""
        if op == "reload":
            rc, doc, stderr = self.ctl("check")
            if rc == 3 and doc and (doc.get("error") or {}).get("kind") == "unsupported":
                # A daemon without `check` (one that registered a bare reload, or predates
                # it): what a reload would do cannot be known without doing it.
                self.module.exit_json(
                    skipped=True,
                    changed=False,
                    # Said outright: ansible fails a result with a non-zero rc and no `failed`.
                    failed=False,
                    rc=rc,
                    cmd=self.last_cmd,
                    operation="check",
                    target=self.params["target"],
                    error=doc["error"],
                    state="running",
                    msg="check mode: the daemon has no `check`, so what a reload would change is unknown; not reloaded",
                )
            return self.report(
                "check",
                rc,
                doc,
                stderr,
                changed=lambda result: not result.get("unchanged", False),
                note=lambda changed: "check mode: ran `ctl check`, nothing was applied; a reload would %s"
                % ("change the configuration" if changed else "change nothing"),
            )
        if op == "call":
            command = self.params["command"]
            rc, doc, stderr = self.ctl("describe")
            if rc != 0 or not doc or "skipped" in doc or not isinstance(doc.get("result"), dict):
                # What the real call would meet first (ctl call asks describe too): no daemon
                # (ok with missing_ok), permission denied, ...; never a change.
                return self.report("describe", rc, doc, stderr, changed=lambda result: False)
            commands = [
                entry
                for entry in doc["result"].get("operations") or []
                if isinstance(entry, dict) and entry.get("kind") == "command"
            ]
            listed = [entry for entry in commands if entry.get("name") == command]
            if not listed:
                # ctl call refuses it before sending anything: unsupported, exit 3.
                supported = [entry.get("name") for entry in commands]
                message = "the daemon does not support `%s`; it supports: %s" % (command, ", ".join(supported))
                self.module.fail_json(
                    msg="ctl call %s: %s (exit 3)" % (self.params["target"], message),
                    changed=False,
                    rc=3,
                    cmd=self.last_cmd,
                    operation="call",
                    target=self.params["target"],
                    socket=doc.get("socket"),
                    daemon=doc.get("daemon"),
                    state="running",
                    error=dict(
                        kind="unsupported",
                        message=message,
                        detail=dict(kind="unsupported", operation=command, supported=supported),
                    ),
                )
            if listed[0].get("access") == "read":
                return self.call()
            self.module.exit_json(
                changed=True,
                rc=0,
                cmd=self.last_cmd,
                operation="call",
                target=self.params["target"],
                state="running",
                msg="check mode: `%s` is not a read-only command; not run" % command,
            )
        if op == "rotate":
            return self.predict_rotate()
        predictions = {
            "drain": lambda status: not status.get("draining", False),
            "resume": lambda status: bool(status.get("draining", False)),
        }
        return self.report(
            "status",
            *self.ctl("status"),
            changed=predictions[op],
            note=lambda changed: "check mode: read the status, ran no %s; it would %s"
            % (op, "change something" if changed else "change nothing"),
        )

    def log_files_in_use(self):
        """The daemon's status, its log files, and which of them name the file the daemon has
        open (compared by device and inode with /proc/PID/fd): (rc, doc, stderr, paths, in_use),
        in_use None when the daemon's open files cannot be read."""
        rc, doc, stderr = self.ctl("status")
        result = (doc or {}).get("result")
        if not isinstance(result, dict):
            result = {}
        paths = [path for path in result.get("log_files") or [] if isinstance(path, str)]
        open_files = daemon_open_files(result.get("pid"))
        if open_files is None:
            return rc, doc, stderr, paths, None
        return rc, doc, stderr, paths, set(path for path in paths if file_id(path) in open_files)

    def rotate(self):
        """A rotate changes something when it reopens a log file as another one. A daemon that
        watches its log file may have reopened it by itself after the rename; the rotate then
        reports that reopen, which this task did not make: a file whose path already named the
        file the daemon had open before the rotate is no change (when that can be known)."""
        _, _, _, _, in_use = self.log_files_in_use()
        if in_use is None:
            return self.report("rotate", *self.ctl("rotate"), changed=reopened)
        return self.report(
            "rotate",
            *self.ctl("rotate"),
            changed=lambda result: reopened(result, already_open=in_use),
        )

    def predict_rotate(self):
        """Check mode for rotate: what `rotate` above would say, from the same observation."""
        rc, doc, stderr, paths, in_use = self.log_files_in_use()
        result = (doc or {}).get("result")
        pid = result.get("pid") if isinstance(result, dict) else None
        if in_use is None:
            guess = " (a guess: the daemon's open files in /proc/%s/fd cannot be read)" % pid
            changed = lambda status: bool(paths)
        else:
            guess = ""
            changed = lambda status: any(path not in in_use for path in paths)
        return self.report(
            "status",
            rc,
            doc,
            stderr,
            changed=changed,
            note=lambda changed: "check mode: read the status, ran no rotate; it would %s%s"
            % ("reopen a log file that was renamed" if changed else "change nothing", guess),
        )

    def report(self, op, rc, doc, stderr, changed, note=None, extra=None):
        """Exits the module with ctl's answer: `failed` unless ctl exited 0."""
        params = self.params
        ret = dict(rc=rc, cmd=self.last_cmd, operation=op, target=params["target"] or "")
        ret.update(extra or {})
        if doc is None:
            # Nothing ctl could say in JSON: a usage error (an option or operation this ctl
            # does not know), or ctl did not run.
            self.module.fail_json(
                msg="ctl %s %s: exited %d without a JSON document: %s"
                % (op, ret["target"], rc, (stderr or "").strip() or "(no output)"),
                error=dict(kind="usage" if rc == 2 else "unrecognized", message=(stderr or "").strip(), detail=None),
                stderr=stderr,
                state="unknown",
                **ret
            )
        for key in ("socket", "daemon", "result", "error"):
            if key in doc:
                ret[key] = doc[key]
        ret["state"] = daemon_state(doc)
        if "skipped" in doc:
            # Not `skipped`: to Ansible that key would make the task skipped, not ok.
            ret["missing"] = doc["skipped"]
            ret["msg"] = "%s (missing_ok): nothing to do" % doc["skipped"]
            self.module.exit_json(changed=False, **ret)
        result = doc.get("result") if isinstance(doc.get("result"), dict) else {}
        is_changed = bool(changed(result)) if "result" in doc else False
        if rc != 0 or not doc.get("ok", False):
            error = doc.get("error") or {}
            message = error.get("message") or failed_reply_message(op, result)
            ret.setdefault("error", dict(kind=error.get("kind", "failed"), message=message, detail=None))
            self.module.fail_json(
                msg="ctl %s %s: %s (exit %d)" % (op, ret["target"], message, rc), changed=is_changed, **ret
            )
        if note:
            ret["msg"] = note(is_changed)
        self.module.exit_json(changed=is_changed, **ret)


# What each of ctl's error kinds says about the daemon (see the operators' guide).
STATES = {
    "no_daemon": "stopped",
    "shutting_down": "stopped",
    "died": "died",
    "not_listening": "elsewhere",
    "timeout": "hung",
}


def daemon_state(doc):
    """The daemon's state from a `ctl --json` document: `running` when one answered."""
    if "skipped" in doc:
        return "stopped"
    if doc.get("daemon"):
        return "running"
    kind = (doc.get("error") or {}).get("kind")
    if kind in STATES:
        return STATES[kind]
    if kind in ("failed", "busy", "unsupported", "bad_arguments"):
        return "running"
    return "unknown"


def reloaded(result):
    """A reload changed something when the generation moved; a joined call shares the reload
    another caller started, and so its `unchanged`."""
    return not result.get("unchanged", False)


def reopened(result, already_open=()):
    """A rotate changed something when a file was reopened as another file (it had been
    renamed); reopening the same file changes nothing, and neither does reporting a reopen the
    daemon had made by itself before (a path in `already_open`)."""
    for entry in result.get("files") or []:
        if entry.get("error") or entry.get("new") == entry.get("old"):
            continue
        if entry.get("path") not in already_open:
            return True
    return False


def filter_changed(result):
    """A log-level that set a filter changed something when the one before was another (both in
    the daemon's spelling)."""
    previous = result.get("previous")
    return previous is not None and previous != result.get("filter")


def filter_directives(text):
    """The directives of a log filter, as a set: split at commas outside brackets (a span's
    fields, `info[{user="a,b"}]`, may hold commas), and a bare level in lower case."""
    directives, depth, start = set(), 0, 0
    text = text or ""
    for i, ch in enumerate(text):
        if ch in "[{":
            depth += 1
        elif ch in "]}":
            depth = max(depth - 1, 0)
        elif ch == "," and depth == 0:
            directives.add(text[start:i].strip())
            start = i + 1
    directives.add(text[start:].strip())
    directives.discard("")
    levels = ("off", "error", "warn", "info", "debug", "trace")
    normalised = set()
    for directive in directives:
        target, sep, level = directive.rpartition("=")
        if level.lower() in levels and "[" not in level:
            directive = target + sep + level.lower()
        normalised.add(directive)
    return normalised


def same_filter(current, wanted):
    """Whether two log filters say the same, as far as can be told without the daemon parsing
    them: the same directives, in any order."""
    return current == wanted or filter_directives(current) == filter_directives(wanted)


def file_id(path):
    """(device, inode) of the file at `path`, or None when there is none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def daemon_open_files(pid):
    """The (device, inode) of every file process `pid` has open, from /proc/PID/fd; None when
    they cannot be read (no such process, not permitted, no /proc)."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return None
    fds = "/proc/%d/fd" % pid
    try:
        names = os.listdir(fds)
    except OSError:
        return None
    found = set()
    for name in names:
        try:
            st = os.stat(os.path.join(fds, name))
        except OSError:
            # Closed since the listing, or not a file (a socket can still be stat'ed).
            continue
        found.add((st.st_dev, st.st_ino))
    return found


def failed_reply_message(op, result):
    """Why a reply that came with a non-zero exit failed (a drain whose deadline passed)."""
    if op == "drain":
        if result.get("resumed"):
            return "the drain was undone by a resume before it completed"
        return "the deadline passed with %s unit(s) of work still in flight; the daemon keeps draining" % result.get(
            "in_flight"
        )
    if op == "doctor":
        dangerous = [
            "%s:%s: %s" % (f.get("file"), f.get("line"), f.get("message"))
            for f in result.get("findings") or []
            if f.get("verdict") in ("would_kill", "would_stop")
        ]
        return "lines that would kill their daemon: " + "; ".join(dangerous)
    return "failed"


CHANGED = {
    "status": lambda result: False,
    "check": lambda result: False,
    "counters": lambda result: False,
    "reload": reloaded,
    "rotate": reopened,
    "resume": lambda result: bool(result.get("was_draining", False)),
    "describe": lambda result: False,
    "hello": lambda result: False,
    "doctor": lambda result: False,
}


if __name__ == "__main__":
    main()
