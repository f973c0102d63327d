"""How the parent of ``--workers N`` judges the end of each of its processes."""

from __future__ import annotations

import pytest

from bridge.forked import how_it_ended, stopped_cleanly


@pytest.mark.parametrize(
    ("code", "stopping", "clean"),
    [
        # Asked to stop: a graceful stop, or a stop before its own start-up.
        (0, True, True),
        (143, True, True),  # SIGTERM before start-up
        (130, True, True),  # SIGINT before start-up (a terminal's Ctrl-C reaches it too)
        (1, True, False),  # failed while stopping
        (-9, True, False),  # killed while stopping
        (-15, True, False),  # killed by the signal itself: it had no handler, so not graceful
        (137, True, False),
        # Not asked: whatever the end, the others are left short-handed.
        (0, False, False),
        (143, False, False),
        (1, False, False),
        (-9, False, False),
    ],
)
def test_only_a_stop_that_was_asked_for_is_clean(code: int, stopping: bool, clean: bool) -> None:
    assert stopped_cleanly(code, stopping=stopping) is clean


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (0, "exited with status 0"),
        (1, "exited with status 1"),
        (2, "exited with status 2"),
        (143, "exited with status 143 (SIGTERM)"),
        (130, "exited with status 130 (SIGINT)"),
        (255, "exited with status 255"),
        (-40, "was killed by signal 40"),
        (-9, "was killed by SIGKILL"),
        (-11, "was killed by SIGSEGV"),
    ],
)
def test_how_a_process_ended_in_words(code: int, words: str) -> None:
    assert how_it_ended(code) == words
