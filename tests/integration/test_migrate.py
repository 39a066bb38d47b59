"""Migrations: each file once, in order, under an advisory lock, and an
edited applied file is refused."""
import os
import shutil
import subprocess
import tempfile
import unittest

from harness import REPO, pg_url, stack


class Migrations(unittest.TestCase):
    def db_url(self, db):
        return pg_url(stack().settings["DATABASE_URL"], db)

    def fresh_db(self, name):
        s = stack()
        s.psql(f"DROP DATABASE IF EXISTS {name}", admin=True, db="postgres")
        s.psql(f"CREATE DATABASE {name} OWNER paintstudio", admin=True, db="postgres")
        self.addCleanup(lambda: s.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)",
                                       admin=True, db="postgres"))
        return self.db_url(name)

    def test_second_run_applies_nothing(self):
        r = stack().run_binary("migrate", os.path.join(REPO, "migrations"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("nothing to apply", r.stdout)
        n = stack().psql("SELECT count(*) FROM schema_migrations")
        files = [f for f in os.listdir(os.path.join(REPO, "migrations")) if f.endswith(".sql")]
        self.assertEqual(int(n), len(files))

    def test_edited_applied_file_is_refused(self):
        d = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, d)
        for f in os.listdir(os.path.join(REPO, "migrations")):
            shutil.copy(os.path.join(REPO, "migrations", f), d)
        first = sorted(os.listdir(d))[0]
        with open(os.path.join(d, first), "a") as f:
            f.write("\n-- an innocent-looking edit\n")
        with open(os.path.join(d, "9999_never_applied.sql"), "w") as f:
            f.write("CREATE TABLE must_not_exist (x int);\n")
        r = stack().run_binary("migrate", d)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(first, r.stderr)
        self.assertIn("edited", r.stderr)
        self.assertEqual(stack().psql("SELECT to_regclass('must_not_exist') IS NULL"), "t")

    def test_failing_migration_changes_nothing(self):
        url = self.fresh_db("migrate_fail")
        d = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, d)
        with open(os.path.join(d, "0001_ok.sql"), "w") as f:
            f.write("CREATE TABLE a (x int);\n")
        with open(os.path.join(d, "0002_broken.sql"), "w") as f:
            f.write("CREATE TABLE b (x int);\nSELECT no_such_function();\n")
        r = stack().run_binary("migrate", d, env={"DATABASE_URL": url})
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("0002_broken.sql", r.stderr)
        out = subprocess.run(["psql", url, "-qAtX", "-c",
                              "SELECT to_regclass('a') IS NOT NULL, to_regclass('b') IS NULL,"
                              " (SELECT count(*) FROM schema_migrations)"],
                             capture_output=True, text=True).stdout.strip()
        self.assertEqual(out, "t|t|1")

    def test_concurrent_migrators_apply_once(self):
        url = self.fresh_db("migrate_race")
        env = dict(stack().env, DATABASE_URL=url)
        procs = [subprocess.Popen([stack().binary, "migrate", os.path.join(REPO, "migrations")],
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for _ in range(4)]
        outs = [p.communicate(timeout=120) for p in procs]
        for p, (out, err) in zip(procs, outs):
            self.assertEqual(p.returncode, 0, err)
        applied = sum(out.count("migrate: applied ") for out, _ in outs)
        files = [f for f in os.listdir(os.path.join(REPO, "migrations")) if f.endswith(".sql")]
        self.assertEqual(applied, len(files))
        n = subprocess.run(["psql", url, "-qAtX", "-c", "SELECT count(*) FROM schema_migrations"],
                           capture_output=True, text=True).stdout.strip()
        self.assertEqual(int(n), len(files))


class ConfigAtStartup(unittest.TestCase):
    def test_bad_values_stop_startup_naming_the_variable(self):
        for assign, name in (("DB_POOL_SIZE=abc", "DB_POOL_SIZE"), ("WORKERS=0", "WORKERS"),
                             ("DB_POOL_TIMEOUT=-3", "DB_POOL_TIMEOUT"),
                             ("DATABASE_URL=mysql://x/y", "DATABASE_URL")):
            with self.subTest(assign=assign):
                k, v = assign.split("=", 1)
                r = stack().run_binary("serve", env={k: v, "FCGI_LISTEN": "unix:/tmp/never.sock"},
                                       timeout=20)
                self.assertEqual(r.returncode, 2)
                lines = r.stderr.strip().splitlines()
                self.assertEqual(len(lines), 1, r.stderr)
                self.assertIn(name, lines[0])

    def test_check_command(self):
        r = stack().run_binary("check", os.path.join(REPO, "migrations"))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertRegex(r.stdout, r"postgresql\s+OK")
        self.assertRegex(r.stdout, r"redis\s+OK")
        self.assertRegex(r.stdout, r"migrations\s+OK")


if __name__ == "__main__":
    unittest.main()
