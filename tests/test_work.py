"""The work a run asks (:class:`batch.run.resume.Work`): places in the plan, a byte
each, and the sessions left at the end read off the finished places, not one by one."""

from __future__ import annotations

import uuid

import numpy as np

from batch.run.resume import Work
from batch.store.ids import SessionIds


def ids_of(n: int) -> SessionIds:
    return SessionIds.of([str(uuid.UUID(int=k * 7919 + 1, version=4)) for k in range(n)])


def test_the_asked_places_come_back_in_the_plans_order_after_the_redone_ones() -> None:
    ids = ids_of(10_000)
    work = Work(ids, redo={"redo-me": None})  # type: ignore[dict-item]  # not read here
    for place in (9_999, 3, 5_000):
        work.ask(place)
    assert list(work.sessions()) == ["redo-me", ids[3], ids[5_000], ids[9_999]]
    assert len(work) == 4


def test_finished_places_are_left_out_and_nothing_asked_gives_nothing() -> None:
    ids = ids_of(9_000)
    work = Work(ids)
    for place in range(len(ids)):
        work.ask(place)
    finished = np.ones(len(ids), bool)
    finished[[1, 4_100, 8_999]] = False
    assert list(work.sessions(finished)) == [ids[1], ids[4_100], ids[8_999]]
    assert list(work.sessions()) == list(ids)
    assert list(Work(ids).sessions(finished)) == []


def test_the_first_places_asked_in_order_need_no_mask_until_one_is_skipped() -> None:
    ids = ids_of(5_000)
    work = Work(ids)
    for place in range(4_500):
        work.ask(place)
    assert not len(work.asked)
    finished = np.zeros(len(ids), bool)
    finished[:4_000] = True
    assert list(work.sessions(finished)) == list(ids[4_000:4_500])
    work.ask(4_999)  # one skipped: now marked
    assert list(work.sessions(finished)) == [*ids[4_000:4_500], ids[4_999]]
    assert len(work) == 4_501
