# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT OR Apache-2.0
"""A stdout callback for tests/integration/ansible.rs: one JSON line at the end of the run with
every task result of every host, in order, and the per-host stats. ansible-core ships no JSON
callback of its own (ansible.posix.json is in another collection)."""

from __future__ import annotations

import json

from ansible.module_utils.common.json import AnsibleJSONEncoder
from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r"""
name: ctl_events
type: stdout
short_description: every task result and the stats as one JSON line, for the ctl tests
description:
  - Prints one JSON document on one line when the run ends, with C(events) (play, task, host,
    status, result) in the order they happened and C(stats) per host.
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "ctl_events"

    def __init__(self):
        super().__init__()
        self.events = []
        self.play = None

    def v2_playbook_on_play_start(self, play):
        self.play = play.get_name()

    def record(self, status, result):
        self.events.append(
            dict(
                play=self.play,
                task=result.task_name or result._task.get_name(),
                host=result._host.get_name(),
                status=status,
                result=result._result,
            )
        )

    def v2_runner_on_ok(self, result):
        self.record("changed" if result._result.get("changed") else "ok", result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self.record("ignored" if ignore_errors else "failed", result)

    def v2_runner_on_skipped(self, result):
        self.record("skipped", result)

    def v2_runner_on_unreachable(self, result):
        self.record("unreachable", result)

    def v2_playbook_on_stats(self, stats):
        summary = {host: stats.summarize(host) for host in sorted(stats.processed)}
        self._display.display(json.dumps(dict(events=self.events, stats=summary), cls=AnsibleJSONEncoder))
