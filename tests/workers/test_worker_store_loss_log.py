"""RQ's own traceback of a store outage is dropped from `kobot worker`'s log (kobot says it in one line);
every other error RQ reports still reaches the log with its traceback."""

from __future__ import annotations

import logging
import sys

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from workers.worker import RQ_WORKER_LOGGER, _StoreLossSaidOnce

RQ_QUITTING = "Worker %s: found an unhandled exception, quitting..."


def _record(error: BaseException, message: str = RQ_QUITTING) -> logging.LogRecord:
    try:
        raise error
    except BaseException:
        info = sys.exc_info()
    return logging.LogRecord(RQ_WORKER_LOGGER, logging.ERROR, __file__, 1, message, ("w1",), info)


@pytest.mark.parametrize(
    ("record", "kept"),
    [
        (_record(RedisConnectionError("Error 111 connecting")), False),
        (_record(ValueError("a bug in a job")), True),
        (_record(RedisConnectionError("Error 111"), message="Worker %s: failed to persist failure"), True),
        (
            logging.LogRecord(
                RQ_WORKER_LOGGER, logging.INFO, __file__, 1, "Listening on %s", ("kobot",), None
            ),
            True,
        ),
    ],
    ids=["store-loss-quitting", "other-error", "other-message", "no-exception"],
)
def test_only_rqs_store_loss_traceback_is_dropped(record: logging.LogRecord, kept: bool) -> None:
    assert _StoreLossSaidOnce().filter(record) is kept
