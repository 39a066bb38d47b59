"""The login policy (issue 24; auth.c and migration 0010 say it in full):
an account is slowed down past its free failures (never locked), an
address is limited by its failures only (good logins never count), a
known device keeps its own budget, and one address cannot fill the login
gate. Every 127.0.0.0/8 address is this machine, so nginx sees each as a
client of its own."""
import json
import threading
import time
import unittest
import uuid

from harness import stack
from test_auth import login_from, make_user

FREE = 3      # LOGIN_MAX_FAILURES for this file: free failures per account
WINDOW = 120  # LOGIN_WINDOW_SECONDS
ADDR_MAX = 4 * FREE


def login(source, username, password, cookie=None):
    """POST /auth/login through nginx from the loopback address source
    (test_auth.login_from). Returns (status, headers, body as JSON,
    {cookie name: "name=value"} of the cookies it set)."""
    st, headers, body = login_from(source, username, password, cookie=cookie)
    cookies = {}
    for c in headers.get("set-cookie", "").split(", "):
        if "=" in c:
            pair = c.split(";", 1)[0]
            cookies[pair.split("=", 1)[0]] = pair
    return st, headers, json.loads(body or b"null"), cookies


class LoginPolicy(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        stack().psql("DELETE FROM login_failures")
        cls.restore = stack().restart_apps(LOGIN_MAX_FAILURES=FREE, LOGIN_WINDOW_SECONDS=WINDOW)

    @classmethod
    def tearDownClass(cls):
        cls.restore()
        stack().psql("DELETE FROM login_failures")

    def test_account_is_slowed_down_never_locked(self):
        name, pw = make_user()
        for _ in range(FREE + 1):  # the free failures, then one slowed one
            self.assertEqual(login("127.0.0.20", name, "wrong-password")[0], 401)
        st, h, body, _ = login("127.0.0.20", name, pw)  # even the right one waits its turn
        self.assertEqual(st, 429, body)
        self.assertIn("for this account", body["detail"])
        wait = int(h["retry-after"])
        self.assertTrue(1 <= wait <= 2, wait)  # 1 s after the first slowed failure
        time.sleep(wait + 0.2)
        st, _, body, cookies = login("127.0.0.20", name, pw)
        self.assertEqual(st, 200, body)  # no lock: the owner is in once the interval passed
        self.assertIn("__Host-ps_device", cookies)
        self.assertEqual(stack().psql(
            f"SELECT count(*) FROM audit_log WHERE actor = '{name}' AND action = 'login_failed' "
            "AND changes -> 'address' ->> 'new' = '127.0.0.20'"), str(FREE + 1))

    def test_forty_addresses_at_one_account_are_slowed_and_the_owner_gets_in(self):
        name, pw = make_user()
        st, _, _, cookies = login("127.0.0.21", name, pw)  # the owner's browser, before
        self.assertEqual(st, 200)
        device = cookies["__Host-ps_device"]
        answers = []
        t0 = time.monotonic()
        for i in range(40):
            st, h, body, _ = login(f"127.0.1.{i + 1}", name, f"guess-{i}")
            answers.append((st, int(h.get("retry-after", 0))))
        took = time.monotonic() - t0
        checked = sum(1 for st, _ in answers if st == 401)
        slowed = [w for st, w in answers if st == 429]
        print(f"  40 guesses from 40 addresses in {took:.1f}s: {checked} checked, "
              f"{len(slowed)} slowed (Retry-After {min(slowed or [0])}-{max(slowed or [0])} s)",
              flush=True)
        self.assertEqual(checked + len(slowed), 40, answers)
        # FREE free ones, then one per interval (1, 2, 4, ... s) during the run
        allowed = FREE + 1
        interval, t = 1, 1
        while t <= took + 1:
            allowed += 1
            interval *= 2
            t += interval
        self.assertGreaterEqual(checked, FREE + 1)
        self.assertLessEqual(checked, allowed)
        self.assertTrue(all(1 <= w <= 60 for w in slowed), slowed)  # slowed, never locked
        # the owner's known device is not slowed by any of it
        st, _, body, _ = login("127.0.0.21", name, pw, cookie=device)
        self.assertEqual(st, 200, body)
        # a device cookie of another account is no pass for this one
        other, opw = make_user()
        st, _, _, c2 = login("127.0.0.22", other, opw)
        self.assertEqual(st, 200)
        st, _, body, _ = login("127.0.0.22", name, pw, cookie=c2["__Host-ps_device"])
        self.assertEqual(st, 429, body)
        # nor is a forged one
        forged = device[:-4] + ("AAAA" if not device.endswith("AAAA") else "BBBB")
        st, _, body, _ = login("127.0.0.21", name, pw, cookie=forged)
        self.assertEqual(st, 429, body)

    def test_good_logins_never_count_against_an_address(self):
        # an office behind one address: a few typos, then everyone logs in
        for i in range(ADDR_MAX - 1):
            st, _, _, _ = login("127.0.0.30", "nobody-" + uuid.uuid4().hex[:8], "typo")
            self.assertEqual(st, 401)
        name, pw = make_user()
        t0 = time.monotonic()
        for i in range(30):
            st, _, body, _ = login("127.0.0.30", name, pw)  # no device cookie kept
            self.assertEqual(st, 200, (i, body))
        print(f"  30 good logins from one address in {time.monotonic() - t0:.1f}s", flush=True)

    def test_an_address_is_limited_by_its_failures(self):
        for i in range(ADDR_MAX):
            st, _, _, _ = login("127.0.0.31", "nobody-" + uuid.uuid4().hex[:8], "guess")
            self.assertEqual(st, 401)
        name, pw = make_user()
        st, _, _, cookies = login("127.0.0.32", name, pw)  # its owner's browser, elsewhere
        self.assertEqual(st, 200)
        st, h, body, _ = login("127.0.0.31", name, pw)
        self.assertEqual(st, 429, body)
        self.assertIn("from this address", body["detail"])  # the service's, not nginx's
        self.assertGreaterEqual(int(h["retry-after"]), 1)
        # a known device is not held back by its address's count
        st, _, body, _ = login("127.0.0.31", name, pw, cookie=cookies["__Host-ps_device"])
        self.assertEqual(st, 200, body)

    def test_a_known_device_has_a_budget_of_its_own(self):
        name, pw = make_user()
        st, _, _, cookies = login("127.0.0.33", name, pw)
        device = cookies["__Host-ps_device"]
        for _ in range(2 * FREE):  # its own budget: not the account's
            self.assertEqual(login("127.0.0.33", name, "wrong", cookie=device)[0], 401)
        self.assertEqual(stack().psql(
            f"SELECT coalesce(max(failures), 0) FROM login_failures WHERE key = 'acct:{name}'"), "0")
        # spent: from now on it counts as an unknown device
        for _ in range(FREE):
            self.assertEqual(login("127.0.0.33", name, "wrong", cookie=device)[0], 401)
        self.assertEqual(stack().psql(
            f"SELECT failures FROM login_failures WHERE key = 'acct:{name}'"), str(FREE))

    def test_one_address_cannot_fill_the_login_gate(self):
        name, pw = make_user()
        results = []

        def flood(i):
            results.append(login("127.0.0.40", "flood-" + uuid.uuid4().hex[:8], "guess")[0])

        threads = [threading.Thread(target=flood, args=(i,)) for i in range(12)]
        for t in threads:
            t.start()
        time.sleep(0.05)
        st, _, body, _ = login("127.0.0.41", name, pw)  # someone else, meanwhile
        for t in threads:
            t.join(timeout=60)
        self.assertEqual(st, 200, body)
        self.assertIn(503, results, "the flood was never held back")  # it was, at the gate


if __name__ == "__main__":
    unittest.main()
