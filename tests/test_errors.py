"""The one user-facing error, and SIGTERM turned into an exception while a command or render runs."""

import signal
import threading

import pytest

from zoomdream.errors import Terminated, ZoomdreamError, signals_to_exceptions


def test_a_message_is_one_line():
    assert str(ZoomdreamError("a.mp4:\n  cannot read\tit")) == "a.mp4: cannot read it"


def test_sigterm_raises_terminated_inside_and_the_old_handler_comes_back():
    seen = []
    previous = signal.signal(signal.SIGTERM, lambda *_: seen.append("outer"))
    try:
        with pytest.raises(Terminated), signals_to_exceptions():
            with signals_to_exceptions():  # nested (the command line around a render): still Terminated
                pass
            signal.raise_signal(signal.SIGTERM)  # to this thread: handled before the next line
        signal.raise_signal(signal.SIGTERM)  # outside: the handler from before
        assert seen == ["outer"]
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_outside_the_main_thread_signals_are_left_alone():
    before = signal.getsignal(signal.SIGTERM)
    errors = []

    def work():
        try:
            with signals_to_exceptions():
                pass
        except Exception as e:  # noqa: BLE001  (the assertion below reports it)
            errors.append(e)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert errors == [] and signal.getsignal(signal.SIGTERM) is before
