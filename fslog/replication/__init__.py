"""Replication: followers that copy a leader's log byte for byte (``follower.py``), from a
leader root on this machine (``source.py``). The storage side — follower appends,
truncation, leader epochs, promotion — lives in ``storage/replica.py`` and
``storage/leader_epoch.py``."""

from .. import kio_import

kio_import.load()  # kio without hypothesis's start-up (see kio_import.py)
