"""
test_journal.py - the spool's journal (SPOOL/journal) with the real binary:
a queue file is never synced on its own; what makes a commit durable is
its image in the journal, and recovery at start writes back a queue file
that is missing or damaged.  Covers: a lost and a damaged queue file come
back byte for byte and are delivered; delivered messages are not brought
back; `queue delete` and `queue hold` survive a kill and a restart (their
tombstones keep recovery from writing the message back).
kill -9 is not a power cut: the lost file is removed by the test, which
is what a power cut can leave of a file that was never synced.
"""

from __future__ import annotations

import os

import mxlib
from mxlib import check, check_eq
from ctllib import blocked_gateway, mx, parse_list, send, spool_file, \
    unblock, wait_attempted

WAIT = 30.0  # a bound on each poll, not a claim of speed


def journal_event(gw, since: int = 0) -> dict:
    return gw.wait_event("journal", timeout_s=WAIT, since=since)


def restart(gw) -> int:
    """SIGKILL, then start on the same spool; the log mark before it."""
    gw.kill9()
    mark = gw.log_mark()
    gw.start()
    return mark


def queued_message(ctx, lines: int = 2
                   ) -> tuple[mxlib.Gateway, str, bytes, bytes]:
    """A message that stays queued; lines=3000 makes it about 240 KB,
    more than the spool's 64 KB write buffer (its image is read back
    from the file for the journal)."""
    gw = blocked_gateway(ctx)
    body = ["line one", "line two"] if lines == 2 else \
        [f"{i:06d} " + "x" * 72 for i in range(lines)]
    msg = mxlib.make_message("journal", body)
    qid = send(gw, ["alice@example.test"], msg)
    wait_attempted(ctx, gw, qid)
    with open(spool_file(gw, "queue", qid), "rb") as f:
        image = f.read()
    return gw, qid, msg, image


def records(data: bytes) -> list[tuple[str, int]]:
    """The queue file's records (src/queue/queue_rec.h: a type letter, 16
    hex digits of length, ':', the payload, LF) as (type, end offset)."""
    out, off = [], 0
    while off + 18 <= len(data):
        n = int(data[off + 1:off + 17], 16)
        off += 18 + n + 1
        check(off <= len(data), f"a record past the end at {off}")
        out.append((chr(data[off - n - 19]), off))
    check_eq(off, len(data), "bytes after the last whole record")
    return out


def end_of_image(data: bytes) -> int:
    """Where the E record ends: the image the journal holds."""
    ends = [off for t, off in records(data) if t == "E"]
    check_eq(len(ends), 1, "E records")
    return ends[0]


def delivered_after_unblock(ctx, gw, qid: str, msg: bytes) -> None:
    """Unblock the Maildir; flush until the message is there.  After a
    restart the queue is read by jobs: a flush may come before the
    message is known (it schedules nothing), or the first attempt after
    the restart may deliver it by itself."""
    unblock(gw)
    root = os.path.join(gw.dir, "blocked", "mail")

    def delivered():
        files = gw.maildir_files("example.test", "alice", root=root)
        if not files:
            mx(ctx, gw, "queue", "flush")
        return files

    files = mxlib.wait_until(delivered, WAIT, f"delivery of {qid}", 0.2)
    with open(files[0], "rb") as f:
        data = f.read()
    check_eq(mxlib.split_received(data)[1], mxlib.expected_delivery(msg),
             "delivered body")
    gw.wait_event("removed", qid=qid, timeout_s=WAIT)


@mxlib.params(["lost", "damaged", "lost_large"])
def test_queue_file_written_back(ctx, param):
    gw, qid, msg, image = queued_message(
        ctx, 3000 if param == "lost_large" else 2)
    gw.kill9()
    path = spool_file(gw, "queue", qid)
    if param.startswith("lost"):
        os.unlink(path)
    else:
        with open(path, "r+b") as f:  # the body's bytes, not its length
            f.seek(len(image) // 2)
            f.write(b"\0" * 16)
    mark = gw.log_mark()
    gw.start()
    ev = journal_event(gw, mark)
    check_eq(ev.get("restored"), "1", f"restored count: {ev['line']}")
    gw.wait_log(rf"event=journal_restore qid={qid} ", WAIT, mark)
    with open(path, "rb") as f:
        back = f.read()
    # the image ends at E: the original less the records the first
    # attempt appended after it (attempt, last error); the first attempt
    # after the restart may already have appended its own
    end = end_of_image(image)
    check(len(back) >= end and back[:end] == image[:end],
          f"the written-back file ({len(back)} bytes) does not start with "
          f"the original's first {end} bytes")
    after = {t for t, off in records(back) if off > end}
    check(after <= {"A", "L"}, f"records after E: {records(back)}")
    out, _ = mx(ctx, gw, "queue", "list")
    msgs, _ = parse_list(out)
    check_eq([m["qid"] for m in msgs], [qid], "queued after recovery")
    delivered_after_unblock(ctx, gw, qid, msg)


def test_whole_queue_file_kept(ctx):
    gw, qid, msg, image = queued_message(ctx)
    mark = restart(gw)
    ev = journal_event(gw, mark)
    check_eq((ev.get("restored"), ev.get("kept")), ("0", "1"),
             f"kept, not restored: {ev['line']}")
    with open(spool_file(gw, "queue", qid), "rb") as f:
        now = f.read()
    # with the attempt record delivery appended after the image
    check_eq(now, image, "the queue file after restart")
    delivered_after_unblock(ctx, gw, qid, msg)


def test_delivered_not_brought_back(ctx, gw_factory):
    gw = gw_factory()
    qids = [send(gw, ["bob@example.test"], mxlib.make_message(f"d{i}"))
            for i in range(20)]
    gw.wait_maildir("example.test", "bob", 20, timeout_s=WAIT)
    for q in qids:
        gw.wait_event("removed", qid=q, timeout_s=WAIT)
    mark = restart(gw)
    ev = journal_event(gw, mark)
    check_eq((ev.get("images"), ev.get("restored")), ("0", "0"),
             f"nothing live after delivery: {ev['line']}")
    check_eq(gw.spool_files(), [], "spool after restart")
    check_eq(len(gw.maildir_files("example.test", "bob")), 20,
             "Maildir files after restart (no redelivery)")


@mxlib.params(["delete", "hold"])
def test_operator_command_survives_restart(ctx, param):
    gw, qid, msg, image = queued_message(ctx)
    mx(ctx, gw, "queue", param, qid)
    mark = restart(gw)
    ev = journal_event(gw, mark)
    check_eq((ev.get("restored"), ev.get("deleted")), ("0", "1"),
             f"tombstoned, not restored: {ev['line']}")
    check(not os.path.exists(spool_file(gw, "queue", qid)),
          "the message is back in queue/")
    check_eq(os.path.exists(spool_file(gw, "hold", qid)), param == "hold",
             "held file")
    check_eq(os.listdir(os.path.join(gw.spool_dir, "journal")) != [],
             True, "journal folder")
    check(not any(n.endswith(".del") for n in
                  os.listdir(os.path.join(gw.spool_dir, "journal"))),
          "tombstones left after recovery")
    out, _ = mx(ctx, gw, "queue", "list")
    msgs, _ = parse_list(out)
    check_eq([(m["qid"], m["state"]) for m in msgs],
             [(qid, "held")] if param == "hold" else [],
             "queue after restart")
