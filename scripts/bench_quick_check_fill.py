# Fills a berth meta.db (schema made by berthd) with N containers of a ~2.5 KB OCI spec and
# two labels each, checkpoints it, and times PRAGMA quick_check with the system sqlite3.
# Used by scripts/bench-quick-check.sh.
import sqlite3, sys, json, time
db = sys.argv[1]; n = int(sys.argv[2])
c = sqlite3.connect(db)
spec = json.dumps({"ociVersion": "1.1.0", "process": {"args": ["sh", "-c", "echo hi"], "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"] * 4, "cwd": "/", "capabilities": {k: ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"] for k in ["bounding", "effective", "permitted"]}}, "root": {"path": "rootfs"}, "mounts": [{"destination": d, "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]} for d in ["/dev", "/dev/shm", "/run", "/tmp", "/proc", "/sys", "/dev/pts", "/dev/mqueue"]], "linux": {"namespaces": [{"type": t} for t in ["pid", "ipc", "uts", "mount", "network"]], "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"], "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]}})
now = "2026-12-08T00:00:00.000000000Z"
c.execute("INSERT OR IGNORE INTO namespaces (name, created_at) VALUES ('default', ?)", (now,))
t = time.time()
with c:
    for i in range(n):
        cur = c.execute("INSERT INTO containers (namespace, id, image, labels, runtime_name, spec, snapshotter, snapshot_key, created_at, updated_at) VALUES ('default', ?, 'docker.io/library/busybox:latest', ?, 'io.containerd.runc.v2', ?, 'overlayfs', ?, ?, ?)",
            ("c%06d" % i, json.dumps({"env": "prod", "app": "a%d" % (i % 100)}), spec, "c%06d" % i, now, now))
        pk = cur.lastrowid
        c.execute("INSERT INTO container_labels (container, key, value) VALUES (?, 'env', 'prod'), (?, 'app', ?)", (pk, pk, "a%d" % (i % 100)))
print("filled", n, "in", round(time.time() - t, 1), "s; spec bytes", len(spec))
c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
for _ in range(3):
    t = time.time(); r = c.execute("PRAGMA quick_check").fetchall(); print("python sqlite3", sqlite3.sqlite_version, "quick_check", r, round((time.time() - t) * 1000), "ms")
c.close()
