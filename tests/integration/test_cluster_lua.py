"""The Redis store's Lua scripts (src/backend/lua/), run by a real redis-server: the
purchase decisions of buy.lua (holder replays before the window, duplicates, per-user
limit, stock, batch order), its records (holders hash, order stream, sold count), the
cost of a user with many orders, and create_sale.lua."""
import os
import time

from skcluster import RedisError, RedisServer
from sklib import SRC, run_tests

LUA = os.path.join(SRC, "src", "backend", "lua")
CONFIRMED, DUPLICATE, SOLD_OUT, LIMIT, NOT_STARTED, ENDED = range(6)

R = None
BUY = CREATE = None
N = [0]


def load(name):
    with open(os.path.join(LUA, name)) as f:
        return f.read()


def keys(sale):
    return [f"sk:{{{sale}}}:{k}" for k in ("sale", "holders", "orders", "o", "due", "log", "ctl")]


def run(sale, *ops, since=-1, pv=-1):
    """Runs buy.lua over operations (each a tuple: kind, args...); returns (header, users,
    params, rows)."""
    args = [str(since), str(pv)] + [str(x) for op in ops for x in op]
    r = R.cmd("EVALSHA", BUY, 7, *keys(sale), *args)
    assert len(r) == 3 + len(ops), r
    return r[0], r[1], r[2], r[3:]


def new_sale(stock=10, limit=1, starts=None, ends=None, window=0, maxq=1):
    N[0] += 1
    sale = f"t{N[0]}"
    now = int(time.time() * 1000)
    starts = now - 1000 if starts is None else starts
    ends = now + 3600000 if ends is None else ends
    r = R.cmd("EVALSHA", CREATE, 1, keys(sale)[0], sale, "A sale", stock, starts, ends, limit, now, window, maxq)
    assert r == 1, r
    return sale


def buy(sale, *pairs):
    """pairs: (user, request); returns (sold, now, [(code, seq, at, remaining, held), ...])."""
    head, _, _, rows = run(sale, *[("b", u, q, 1) for u, q in pairs])
    # code, seq, created_at, remaining, units held
    return head[4], head[1], [(r[0], r[3], r[4], r[1], r[2]) for r in rows]


def holder(sale, user):
    """The user's orders as the holders hash keeps them: [(seq, request), ...]."""
    rec = R.cmd("HGET", keys(sale)[1], user)
    if rec is None:
        return []
    count, seq, req = rec.split("\t")[:3]
    orders = [(int(seq), req)]
    for i in range(2, int(count) + 1):
        s, r, _ = R.cmd("HGET", keys(sale)[1], f"{user}\t{i}").split("\t")
        orders.append((int(s), r))
    return orders


def test_create(ck):
    sale = new_sale(stock=7, limit=2)
    h = R.cmd("HGETALL", keys(sale)[0])
    d = dict(zip(h[::2], h[1::2]))
    ck.eq(d["stock"], "7", "stock stored")
    ck.eq(d["per_user_limit"], "2", "limit stored")
    ck.eq(d["sold"], "0", "sold starts at 0")
    again = R.cmd("EVALSHA", CREATE, 1, keys(sale)[0], sale, "Other", 99, 0, 1, 1, 0)
    ck.eq(again, 0, "creating an existing sale is refused")
    ck.eq(R.cmd("HGET", keys(sale)[0], "stock"), "7", "the existing sale is unchanged")


def test_batch_order_and_sold_out(ck):
    sale = new_sale(stock=3)
    sold, now, rows = buy(sale, ("a", "r1"), ("b", "r1"), ("c", "r1"), ("d", "r1"), ("e", "r1"))
    ck.eq([r[0] for r in rows], [CONFIRMED] * 3 + [SOLD_OUT] * 2, "first three confirmed, in arrival order")
    ck.eq([r[1] for r in rows], [1, 2, 3, 0, 0], "seqs follow the batch order")
    ck.eq([r[3] for r in rows], [2, 1, 0, 0, 0], "remaining after each decision")
    ck.eq(sold, 3, "sold after the batch")
    ck.check(abs(now - time.time() * 1000) < 60000, "the script reports Redis's clock")
    ck.eq(R.cmd("HGET", keys(sale)[0], "sold"), "3", "sold count stored")
    entries = R.cmd("XRANGE", keys(sale)[2], "-", "+")
    ck.eq([e[0] for e in entries], ["1-0"], "one stream entry for the batch, id = its first seq")
    f = dict(zip(entries[0][1][::2], entries[0][1][1::2]))
    ck.eq(f["n"], "3", "the entry counts its orders")
    ck.eq(f["u"].split("\n"), ["a", "b", "c"], "the entry carries the users in seq order")
    ck.eq(f["r"].split("\n"), ["r1", "r1", "r1"], "and their request ids")
    ck.eq(rows[0][2], int(f["t"]), "created_at as in the stream")
    # a later batch: still sold out, the holder keeps hearing about their order
    _, _, rows = buy(sale, ("f", "x"), ("a", "r1"), ("a", "r2"))
    ck.eq([r[0] for r in rows], [SOLD_OUT, DUPLICATE, LIMIT], "after the sell-out: sold_out, holder duplicate/limit")
    ck.eq(rows[0][1], 0, "sold_out names no order for a non-holder")
    ck.eq(rows[1][1], 1, "the duplicate names the first order")
    ck.eq((rows[2][1], rows[2][4]), (1, 1), "limit_reached names the first order and the count held")
    ck.eq(R.cmd("XLEN", keys(sale)[2]), 1, "no entry for refused purchases")


def test_duplicates(ck):
    sale = new_sale(stock=10, limit=3)
    _, _, rows = buy(sale, ("u", "r1"), ("u", "r1"), ("v", "r1"), ("u", "r2"), ("u", "r1"))
    ck.eq([r[0] for r in rows], [CONFIRMED, DUPLICATE, CONFIRMED, CONFIRMED, DUPLICATE],
          "a repeated request id within one batch is a duplicate")
    ck.eq([r[1] for r in rows], [1, 1, 2, 3, 1], "duplicates name the first order")
    ck.eq(rows[1][2], rows[0][2], "the duplicate carries the first order's created_at")
    # across batches too
    _, _, rows = buy(sale, ("u", "r2"))
    ck.eq(rows[0][:2], (DUPLICATE, 3), "a repeated request id in a later batch")
    # an empty request id never deduplicates (as in the embedded ledger)
    sale2 = new_sale(stock=10, limit=2)
    _, _, rows = buy(sale2, ("w", ""), ("w", ""), ("w", ""))
    ck.eq([r[0] for r in rows], [CONFIRMED, CONFIRMED, LIMIT], "empty request ids are separate purchases")
    ck.eq(holder(sale2, "w"), [(1, ""), (2, "")], "the holder record lists both orders")
    ck.eq(R.cmd("HEXISTS", keys(sale2)[1], "w\n"), 0, "an empty request id is not indexed")


def test_limit(ck):
    sale = new_sale(stock=10, limit=1)
    _, _, rows = buy(sale, ("u", "r1"), ("u", "r2"), ("u", "r3"))
    ck.eq([r[0] for r in rows], [CONFIRMED, LIMIT, LIMIT], "limit 1: one order per user")
    ck.eq([r[1] for r in rows], [1, 1, 1], "limit_reached names the first order")
    sale = new_sale(stock=10, limit=2)
    _, _, rows = buy(sale, ("u", "r1"), ("x", "r1"), ("u", "r2"), ("u", "r3"))
    ck.eq([r[0] for r in rows], [CONFIRMED, CONFIRMED, CONFIRMED, LIMIT], "limit 2")
    ck.eq(rows[3][1], 1, "limit_reached names the user's first order")
    ck.eq(holder(sale, "u"), [(1, "r1"), (3, "r2")], "holder record: seq and request of each order")
    ck.eq(R.cmd("HGET", keys(sale)[1], "u\nr2"), "2", "the request index names the user's second order")
    ck.eq(R.cmd("HGET", keys(sale)[0], "sold"), "3", "only confirmed purchases count")


def test_window(ck):
    now = int(time.time() * 1000)
    sale = new_sale(stock=5, starts=now + 600000, ends=now + 1200000)
    _, _, rows = buy(sale, ("a", "r"), ("b", "r"))
    ck.eq([r[0] for r in rows], [NOT_STARTED, NOT_STARTED], "before the window: not_started")
    ck.eq(R.cmd("EXISTS", keys(sale)[1]), 0, "nothing recorded before the window")
    ck.eq(R.cmd("XLEN", keys(sale)[2]), 0, "no order before the window")
    sale = new_sale(stock=5, starts=now - 600000, ends=now - 1000)
    _, _, rows = buy(sale, ("a", "r"))
    ck.eq(rows[0][0], ENDED, "after the window: ended")
    ck.eq(R.cmd("HGET", keys(sale)[0], "sold"), "0", "nothing sold after the window")


def test_replay_after_the_end(ck):
    # I5 at the window's end: a holder's replay gets the first answer whatever Redis's
    # clock says; anything else after the end is "ended".
    now = int(time.time() * 1000)
    sale = new_sale(stock=5, limit=3, ends=now + 1500)
    _, _, rows = buy(sale, ("h", "r1"), ("h", ""), ("h", "r3"))
    ck.eq([r[:2] for r in rows], [(CONFIRMED, 1), (CONFIRMED, 2), (CONFIRMED, 3)], "three orders in the window")
    while int(R.cmd("TIME")[0]) * 1000 < now + 1600:
        time.sleep(0.05)
    sold, rnow, rows = buy(sale, ("h", "r1"), ("h", "r3"), ("h", "r4"), ("h", ""), ("x", "r1"))
    ck.check(rnow >= now + 1500, "Redis's clock is past the end")
    ck.eq([r[0] for r in rows], [DUPLICATE, DUPLICATE, ENDED, ENDED, ENDED],
          "replays (first and third order) are duplicates; new requests and others: ended")
    ck.eq((rows[0][1], rows[1][1]), (1, 3), "each replay names its own order")
    ck.eq(sold, 3, "nothing sold after the end")
    ck.eq(R.cmd("XLEN", keys(sale)[2]), 1, "no entry after the end")
    # before the start nobody holds anything: not_started, even with a request id
    later = new_sale(stock=5, starts=now + 600000, ends=now + 1200000)
    _, _, rows = buy(later, ("h", "r1"))
    ck.eq(rows[0][0], NOT_STARTED, "before the start: not_started")


def test_holder_below_limit_after_sell_out(ck):
    # per_user_limit 3, stock 3: u holds one when the stock runs out. u hears sold_out,
    # carrying the first order u holds and how many.
    sale = new_sale(stock=3, limit=3)
    _, _, rows = buy(sale, ("u", "a"), ("v", "b"), ("v", "c"), ("u", "d"), ("w", "e"))
    ck.eq([r[0] for r in rows], [CONFIRMED, CONFIRMED, CONFIRMED, SOLD_OUT, SOLD_OUT],
          "the fourth and fifth find the stock gone")
    ck.eq(rows[3][1:2] + rows[3][4:], (1, 1), "u's sold_out carries u's first order and the count held")
    ck.eq(rows[4][1:2] + rows[4][4:], (0, 0), "w holds nothing: plain sold_out")
    _, _, rows = buy(sale, ("v", "z"), ("v", "c"))
    ck.eq([(r[0], r[1], r[4]) for r in rows], [(SOLD_OUT, 2, 2), (DUPLICATE, 3, 2)],
          "v below the limit: sold_out with v's orders; v's replay: duplicate")


def test_user_with_many_orders(ck):
    # One user, a large per_user_limit and distinct request ids: each purchase writes a
    # few fields of fixed size, never the user's whole list (which made the script
    # quadratic and held Redis past the nodes' timeout).
    n, batch = 100000, 2000
    sale = new_sale(stock=n + 10, limit=n + 5)
    for b in range(0, n, batch):
        sold, _, rows = buy(sale, *[("big", f"q{i}") for i in range(b, b + batch)])
        if any(r[0] != CONFIRMED for r in rows):
            ck.check(False, f"batch at {b}: {set(r[0] for r in rows)}")
            return
    ck.eq(sold, n, "100 000 orders for one user")
    h = keys(sale)[1]
    ck.check(R.cmd("HSTRLEN", h, "big") < 64, "the user's record stays small (a count and the first order)")
    ck.eq(R.cmd("HGET", h, "big").split("\t")[0], str(n), "with the count")
    ck.check(R.cmd("HSTRLEN", h, f"big\t{n}") < 64, "one small field per order")
    # The next decisions: a replay of an early and a late request, a new one.
    R.cmd("CONFIG", "RESETSTAT")
    _, _, rows = buy(sale, ("big", "q7"), ("big", f"q{n - 1}"), ("big", "fresh"), ("big", "q0"))
    ck.eq([r[:2] for r in rows], [(DUPLICATE, 8), (DUPLICATE, n), (CONFIRMED, n + 1), (DUPLICATE, 1)],
          "replays name their orders; a new request is confirmed")
    # The work done: the script's own HGET/HSET calls, a handful per purchase.
    stats = R.cmd("INFO", "commandstats")
    calls = {}
    for line in stats.splitlines():
        if line.startswith("cmdstat_"):
            name, rest = line[len("cmdstat_"):].split(":", 1)
            calls[name] = int(dict(kv.split("=") for kv in rest.split(","))["calls"])
    ck.check(calls.get("hget", 0) <= 4 * 4, f"a few HGETs per purchase: {calls.get('hget')}")
    ck.check(calls.get("hset", 0) <= 3, f"one HSET of holder fields, of order records and of the counts: "
             f"{calls.get('hset')}")
    entries = R.cmd("XRANGE", keys(sale)[2], f"{n + 1}-0", "+")
    ck.eq(len(entries), 1, "the new order in the stream")


def test_unknown_sale(ck):
    r = R.cmd("EVALSHA", BUY, 7, *keys("nosuch"), -1, -1, "b", "a", "r", 1, raise_errors=False)
    ck.check(isinstance(r, RedisError) and str(r).startswith("NOSALE"), f"unknown sale is an error: {r!r}")
    ck.eq(R.cmd("EXISTS", *keys("nosuch")), 0, "and nothing is written")


def test_refused_whole_when_out_of_memory(ck):
    # The "#!lua" flags line: a script is refused before it runs, never half-done.
    sale = new_sale(stock=5)
    R.cmd("CONFIG", "SET", "maxmemory", "1")
    try:
        r = R.cmd("EVALSHA", BUY, 7, *keys(sale), -1, -1, "b", "a", "r", 1, "b", "b", "r", 1, raise_errors=False)
    finally:
        R.cmd("CONFIG", "SET", "maxmemory", "0")
    ck.check(isinstance(r, RedisError) and "OOM" in str(r), f"refused over maxmemory: {r!r}")
    ck.eq(R.cmd("HGET", keys(sale)[0], "sold"), "0", "nothing sold")
    ck.eq(R.cmd("XLEN", keys(sale)[2]), 0, "no order written")
    _, _, rows = buy(sale, ("a", "r"))
    ck.eq(rows[0][:2], (CONFIRMED, 1), "works again once memory is available")


def test_large_batch(ck):
    sale = new_sale(stock=1000, limit=1)
    pairs = [(f"user{i}", f"req{i}") for i in range(1500)]
    sold, _, rows = buy(sale, *pairs)
    ck.eq(sold, 1000, "a 1500-purchase batch sells exactly the stock")
    ck.eq(sum(1 for r in rows if r[0] == CONFIRMED), 1000, "1000 confirmed")
    ck.eq([r[1] for r in rows[:1000]], list(range(1, 1001)), "in order")
    entries = R.cmd("XRANGE", keys(sale)[2], "-", "+")
    ck.eq([e[0] for e in entries], ["1-0"], "one entry holds the 1000 orders (1000 at most an entry)")
    ck.eq(len(dict(zip(entries[0][1][::2], entries[0][1][1::2]))["u"].split("\n")), 1000, "1000 users in it")
    sale2 = new_sale(stock=2500, limit=1)
    buy(sale2, *[(f"v{i}", "") for i in range(2500)])
    ck.eq([e[0] for e in R.cmd("XRANGE", keys(sale2)[2], "-", "+")], ["1-0", "1001-0", "2001-0"],
          "2500 orders of one batch: entries of 1000, 1000 and 500")
    ck.eq(R.cmd("HLEN", keys(sale)[1]), 1000, "1000 holders")


RESERVED, PAUSED, BAD_QUANTITY = 8, 9, 10
S_RESERVED, S_CONFIRMED, S_CANCELLED, S_EXPIRED, S_REFUNDED = range(5)
TR_OK, TR_DUP, TR_EXPIRED, TR_CANCELLED, TR_REFUNDED, TR_ALREADY_PAID, TR_NOT_RESERVED, TR_NOT_CONFIRMED = range(8)


def counts(sale):
    h = dict(zip(*[iter(R.cmd("HGETALL", keys(sale)[0]))] * 2))
    stock, held, sold = int(h["stock"]), int(h.get("held", 0)), int(h["sold"])
    return stock, held, sold


def entries(sale):
    out = []
    for eid, f in R.cmd("XRANGE", keys(sale)[2], "-", "+"):
        out.append((eid, dict(zip(f[::2], f[1::2]))))
    return out


def test_lifecycle_transitions(ck):
    sale = new_sale(stock=5, limit=3, window=3600000, maxq=2)
    head, _, _, rows = run(sale, ("b", "a", "r1", 2), ("b", "b", "r1", 1), ("b", "c", "r1", 3))
    ck.eq([r[0] for r in rows], [RESERVED, RESERVED, BAD_QUANTITY], "reserved, reserved, over max_quantity")
    ck.eq((rows[0][3], rows[0][5], rows[0][6]), (1, 2, S_RESERVED), "seq 1, two units, reserved")
    ck.eq(rows[0][7], rows[0][4] + 3600000, "pay_by = created_at + window")
    ck.eq(head[2:5], [5, 3, 0], "stock 5, held 3, sold 0")
    ck.eq(R.cmd("ZCARD", keys(sale)[4]), 2, "two deadlines pending")
    ck.eq(head[7], rows[0][7], "the next deadline is the first reservation's")
    # pay, pay again, pay with another id, cancel a confirmed one, refund
    _, _, _, rows = run(sale, ("p", 1, "pay-1"), ("p", 1, "pay-1"), ("p", 1, "pay-2"), ("c", 1, "a"), ("f", 2))
    ck.eq([(r[0], r[1]) for r in rows], [(0, TR_OK), (0, TR_DUP), (0, TR_ALREADY_PAID), (0, TR_NOT_RESERVED),
                                        (0, TR_NOT_CONFIRMED)], "pay, duplicate, already paid, no cancel, no refund")
    ck.eq((rows[0][5], rows[0][11]), (S_CONFIRMED, "pay-1"), "confirmed with its payment id")
    ck.eq(counts(sale), (5, 1, 2), "held 1, sold 2")
    # cancel: someone else's, the buyer's, the admin's
    _, _, _, rows = run(sale, ("c", 2, "zz"), ("c", 2, "b"), ("c", 2, ""), ("g", 9))
    ck.eq([(r[0], r[1]) for r in rows[:3]], [(2, 0), (0, TR_OK), (0, TR_NOT_RESERVED)],
          "not the buyer's; cancelled; then not reserved")
    ck.eq(rows[3][0], 1, "no such order")
    ck.eq(counts(sale), (5, 0, 2), "the cancelled unit is back")
    ck.eq(R.cmd("ZCARD", keys(sale)[4]), 0, "no deadline pending")
    _, _, _, rows = run(sale, ("f", 1), ("f", 1), ("p", 1, "pay-1"))
    ck.eq([r[1] for r in rows], [TR_OK, TR_NOT_CONFIRMED, TR_REFUNDED], "refund, again, pay a refunded order")
    ck.eq(counts(sale), (5, 0, 0), "every unit back")
    # a returned unit counts no more against the limit
    _, _, _, rows = run(sale, ("b", "a", "r9", 2), ("b", "a", "r1", 1))
    ck.eq([r[0] for r in rows], [RESERVED, DUPLICATE], "a new reservation; the old request is a duplicate")
    ck.eq(rows[1][6], S_REFUNDED, "the duplicate shows the order's state now")
    ck.eq(rows[0][2], 2, "the buyer holds 2 units")
    ev = entries(sale)
    kinds = [(e.get("k", "o"), e.get("e")) for _, e in ev]
    ck.eq(kinds, [("o", None), ("x", "pay"), ("x", "cancel"), ("x", "refund"), ("o", None)],
          "the stream: orders, pay, cancel, refund, orders (the refused ones leave nothing)")
    ck.eq(ev[0][1]["q"].split("\n"), ["2", "1"], "quantities in the order entry")
    ck.eq(ev[1][1]["a"], "pay-1", "the payment id in the pay entry")
    ck.eq(ev[2][1]["a"], "buyer", "who cancelled")
    ck.eq(ev[3][1]["s"], "1", "the refunded seq")
    ids = [eid for eid, _ in ev]
    ck.eq(ids, sorted(ids, key=lambda x: tuple(map(int, x.split("-")))), "entry ids grow")


def test_expiry(ck):
    sale = new_sale(stock=3, limit=1, window=300)
    head, _, _, rows = run(sale, ("b", "a", "r", 1), ("b", "b", "r", 1), ("b", "c", "r", 1), ("b", "d", "r", 1))
    ck.eq([r[0] for r in rows], [RESERVED] * 3 + [SOLD_OUT], "three reserved, sold out")
    time.sleep(0.5)
    # pay after pay_by: expired, never confirmed (I8); the rest expire in the same step
    head, _, _, rows = run(sale, ("p", 2, "late"))
    ck.eq((rows[0][1], rows[0][5]), (TR_EXPIRED, S_EXPIRED), "a late payment: 409 expired, order expired")
    ck.eq(head[2:5], [3, 0, 0], "every unit back")
    ck.eq(head[7], 0, "nothing pending")
    st = [run(sale, ("g", k))[3][0][5] for k in (1, 2, 3)]
    ck.eq(st, [S_EXPIRED] * 3, "all expired")
    kinds = [(e.get("k", "o"), e.get("e"), e.get("s")) for _, e in entries(sale)]
    ck.eq(kinds[1:], [("x", "expire", "1\n2\n3")], "every due reservation expires before the payment is decided")
    # a no-op call expires too (the node's periodic call)
    sale2 = new_sale(stock=2, window=200)
    run(sale2, ("b", "a", "r", 1))
    time.sleep(0.35)
    head, _, _, _ = run(sale2)
    ck.eq(head[3:5], [0, 0], "expired by a call without operations")
    _, _, _, rows = run(sale2, ("b", "a", "r2", 1))
    ck.eq(rows[0][0], RESERVED, "the buyer may reserve again (returned units do not count)")


def test_controls(ck):
    sale = new_sale(stock=10, limit=5, maxq=5)
    def ctl(req, action, amount=0, set_=0, name="", starts=0, ends=0, limit=0, maxq=0, window=0, actor="ops"):
        return ("k", req, actor, action, amount, set_, name, starts, ends, limit, maxq, window)
    head, _, params, rows = run(sale, ("b", "a", "r", 2), ctl("c1", 0), ("b", "b", "r", 1), ctl("c2", 1),
                                ("b", "c", "r", 1))
    ck.eq([r[0] for r in rows], [CONFIRMED, 0, PAUSED, 0, CONFIRMED], "bought, paused, refused, resumed, bought")
    ck.eq(head[6], 2, "params version bumped twice")
    ck.check(params and params[6] == 0, f"params returned: {params}")
    _, _, params, rows = run(sale, ctl("c1", 0), ctl("c1", 3, 5), ctl("c3", 4, 20), ctl("c4", 4, 7), ctl("c5", 3, 4),
                             pv=4)
    ck.eq([r[0] for r in rows], [1, 2, 7, 0, 0], "duplicate, reused, insufficient, removed, added")
    ck.eq(counts(sale), (7, 0, 3), "stock 10 - 7 + 4")
    ck.eq(params, [], "no params when the caller has the version the script ends with")
    log = R.cmd("LRANGE", keys(sale)[5], 0, -1)
    ck.eq(len(log), 4, "four entries in the trail")
    import json
    e = json.loads(log[2])
    ck.eq((e["seq"], e["action"], e["params"], e["before"]["stock"], e["after"]["stock"], e["before"]["orders"]),
          (3, "remove_stock", {"remove": 7}, 10, 3, 2), "the trail entry")
    ck.eq(json.loads(rows[0][2])["seq"], 1, "a duplicate answers the first entry")
    # patch
    now = int(R.cmd("TIME")[0]) * 1000
    _, _, _, rows = run(sale, ctl("p1", 5, set_=32, window=1000), ctl("p2", 5, set_=1 | 8, name="Neu \"x\"", limit=9),
                        ctl("p3", 5, set_=4, ends=now - 5), ctl("p4", 5, set_=16, maxq=50))
    ck.eq([(r[0], r[1]) for r in rows], [(10, ""), (0, ""), (12, "ends_at"), (14, "max_quantity")],
          "window with orders, name+limit, end in past, max above limit")
    ck.eq(json.loads(R.cmd("LINDEX", keys(sale)[5], -1))["after"]["name"], 'Neu "x"', "the name escaped in JSON")
    _, _, _, rows = run(sale, ctl("z", 2), ctl("z2", 0), ("b", "q", "r", 1), ("p", 1, "x"))
    ck.eq([r[0] for r in rows], [0, 3, ENDED, 0], "closed, then everything refused; purchases ended")
    kinds = [e.get("k", "o") for _, e in entries(sale)]
    ck.eq(kinds.count("c"), 6, "one c entry per accepted control")


def test_users_since_and_params(ck):
    sale = new_sale(stock=10, limit=1)
    run(sale, ("b", "a", "r", 1), ("b", "b", "r", 1))
    head, users, params, _ = run(sale, ("b", "c", "r", 1), since=1, pv=0)
    ck.eq(users, ["b", "c"], "the users of the orders after since")
    ck.eq((head[0], head[8]), (3, 3), "covered up to seq")
    ck.eq(params, [], "the caller's params version is current: none returned")
    _, users, params, _ = run(sale, since=-1, pv=7)
    ck.eq(users, [], "no users when the caller keeps none")
    ck.eq(len(params), 8, "params when the version differs")


def main():
    global R, BUY, CREATE
    srv = RedisServer()
    try:
        R = srv.client()
        BUY = R.cmd("SCRIPT", "LOAD", load("buy.lua"))
        CREATE = R.cmd("SCRIPT", "LOAD", load("create_sale.lua"))
        run_tests([test_create, test_batch_order_and_sold_out, test_duplicates, test_limit, test_window,
                   test_replay_after_the_end, test_holder_below_limit_after_sell_out, test_user_with_many_orders,
                   test_unknown_sale, test_refused_whole_when_out_of_memory, test_large_batch,
                   test_lifecycle_transitions, test_expiry, test_controls, test_users_since_and_params])
    finally:
        srv.close()


if __name__ == "__main__":
    main()
