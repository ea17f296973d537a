#!/usr/bin/env python3
"""Writes schema/openrpc.json, the OpenRPC document berthd serves at rpc.discover.

The document is generated from the tables below so that params, results and errors stay
uniform; edit this file and re-run it (`python3 schema/tools/openrpc.py`) when a method changes.
A daemon unit test fails if a served method is missing here or a listed one is not served."""
import json, os

S = lambda t, **kw: dict(type=t, **kw)
STR, INT, BOOL, OBJ = S("string"), S("integer"), S("boolean"), S("object")
ARR = lambda item: S("array", items=item)
REF = lambda name: {"$ref": f"#/components/schemas/{name}"}
LABELS = S("object", additionalProperties=STR, description="key+value <= 4096 bytes each")

schemas = {
    "Labels": LABELS,
    "Runtime": S("object", required=["name"], properties={"name": STR, "options": {}}),
    "Container": S("object", properties={
        "id": STR, "labels": REF("Labels"), "image": STR, "runtime": REF("Runtime"),
        "spec": S("object", description="OCI runtime spec, stored as given"),
        "snapshotter": STR, "snapshot_key": STR, "created_at": STR, "updated_at": STR,
        "extensions": OBJ, "status": REF("ContainerStatus")}),
    "ContainerStatus": S("object", required=["state"], description="containers.list with "
                         "with_status: the task's status, or how the last task ended", properties={
        "state": S("string", enum=["none", "created", "running", "paused", "stopped", "exited"],
                   description="stopped: the task exited and is not deleted yet; exited: the "
                               "ended task was deleted; none: it never ran"),
        "pid": INT, "exit_status": INT, "exit_reason": REF("ExitReason"), "started_at": STR,
        "exited_at": STR}),
    "ContainerInput": S("object", required=["id"], additionalProperties=False, properties={
        "id": STR, "labels": REF("Labels"), "image": STR, "runtime": REF("Runtime"),
        "spec": OBJ, "snapshotter": STR, "snapshot_key": STR, "extensions": OBJ}),
    "SpecOptions": S("object", additionalProperties=False, properties={
        "args": ARR(STR), "env": ARR(STR), "cwd": STR, "user": STR, "tty": BOOL,
        "net_host": BOOL, "readonly": BOOL,
        "mounts": ARR(S("string", description="type=bind,src=..,dst=..,options=rbind:ro")),
        "hostname": STR,
        "memory_limit": S("integer", description="bytes (memory + swap), OOM kill beyond"),
        "nano_cpus": S("integer", description="billionths of a CPU, as docker's NanoCpus"),
        "privileged": BOOL, "cap_add": ARR(STR), "cap_drop": ARR(STR),
        "devices": ARR(S("object", required=["path", "kind", "major", "minor"], properties={
            "path": STR, "kind": S("string", enum=["c", "b"]), "major": INT, "minor": INT,
            "access": S("string", description="some of r, w, m; default rwm"),
            "file_mode": INT})),
        "init": S("string", description="host path of a static init (tini) run as PID 1")}),
    "Namespace": S("object", properties={"name": STR, "labels": REF("Labels"), "created_at": STR}),
    "Event": S("object", properties={"seq": INT, "timestamp": STR, "namespace": STR,
                                      "topic": STR, "event": OBJ}),
    "Mount": S("object", properties={"type": STR, "source": STR, "options": ARR(STR)}),
    "Filters": ARR(S("string", description="containerd filter grammar")),
    "Process": S("object", properties={
        "container_id": STR, "exec_id": STR, "pid": INT,
        "status": S("string", enum=["created", "running", "stopped", "paused", "pausing",
                                    "unknown"]),
        "stdin": STR, "stdout": STR, "stderr": STR, "terminal": BOOL,
        "exit_status": INT, "exited_at": STR, "exit_reason": REF("ExitReason"),
        "started_at": S("string", description="when it was started (berth extension)")}),
    "ExitReason": S("string", enum=["exited", "signaled", "oom", "lost", "host_restarted"],
                    description="how the exit status was learnt; lost and host_restarted "
                                "carry status 255, meaning unknown"),
    "ExitInfo": S("object", properties={"pid": INT, "exit_status": INT, "exited_at": STR,
                                         "exit_reason": REF("ExitReason")}),
    "Descriptor": S("object", properties={"media_type": STR, "digest": STR, "size": INT}),
    "Image": S("object", properties={"name": STR, "target": REF("Descriptor"),
                                      "labels": REF("Labels"), "created_at": STR,
                                      "updated_at": STR,
                                      "size": S("integer", description="images.list: bytes "
                                                "of its layers uncompressed once unpacked, "
                                                "else of its compressed content")}),
    "ContentInfo": S("object", properties={"digest": STR, "size": INT, "labels": REF("Labels"),
                                            "created_at": STR, "updated_at": STR}),
    "SnapshotInfo": S("object", properties={
        "key": STR, "parent": STR, "kind": S("string", enum=["active", "view", "committed"]),
        "snapshotter": STR, "labels": REF("Labels"), "created_at": STR, "updated_at": STR}),
    "Lease": S("object", properties={"id": STR, "labels": REF("Labels"), "created_at": STR,
                                      "expires_at": STR}),
    "LeaseResource": S("object", required=["id", "kind"], properties={
        "id": STR, "kind": S("string", description="content, or snapshots/<snapshotter>")}),
    "LogEntry": S("object", required=["time", "stream", "text"], properties={
        "time": S("string", description="RFC 3339, nanoseconds, UTC"),
        "stream": S("string", enum=["stdout", "stderr"]),
        "partial": S("boolean", description="a piece of a longer line (or a last line "
                                            "without newline); the stream's next entry "
                                            "continues it"),
        "text": S("string", description="without its newline; invalid UTF-8 replaced")}),
    "LogBatch": S("object", properties={
        "entries": ARR(REF("LogEntry")),
        "truncated": S("boolean", description="containers.logs: more matched than one reply "
                                              "carries (4 MiB of text); these are the oldest"),
        "end": S("boolean", description="logs.subscribe: the last notification")}),
    "Signal": {"oneOf": [INT, S("string", description="SIGTERM, TERM, KILL, ...")]},
}

NS = {"name": "namespace", "schema": STR, "description": "default \"default\""}

def p(name, schema, required=False, description=None):
    d = {"name": name, "schema": schema}
    if required: d["required"] = True
    if description: d["description"] = description
    return d

SN = p("snapshotter", STR, description="default overlayfs")

def m(name, summary, params=(), result=OBJ, errors=(), **extra):
    d = {"name": name, "summary": summary, "paramStructure": "by-name",
         "params": [NS, *params], "result": {"name": "result", "schema": result}}
    if errors:
        d["errors"] = [{"$ref": f"#/components/errors/{e}"} for e in errors]
    d.update(extra)
    return d

methods = [
    m("system.version", "Daemon, API and runtime versions.",
      result=S("object", properties={"version": STR, "api_version": STR, "runtime": OBJ})),
    m("system.info", "Paths, snapshotters and object counts.",
      result=S("object", properties={"root": STR, "state": STR, "socket": STR,
                                     "snapshotters": ARR(STR), "counts": OBJ})),
    m("rpc.discover", "This document.", result=OBJ),
    m("namespaces.list", "All namespaces.",
      result=S("object", properties={"namespaces": ARR(REF("Namespace"))})),
    m("namespaces.create", "Creates a namespace.",
      [p("name", STR, True), p("labels", REF("Labels"))],
      S("object", properties={"namespace": REF("Namespace")}),
      ["invalid_argument", "already_exists"]),
    m("namespaces.delete", "Deletes an empty namespace.", [p("name", STR, True)],
      errors=["not_found", "failed_precondition"]),
    m("containers.create", "Creates a container (metadata only).",
      [p("container", REF("ContainerInput"), True),
       p("spec_options", REF("SpecOptions"),
         description="used to build the spec when container.spec is absent")],
      S("object", properties={"container": REF("Container")}),
      ["invalid_argument", "already_exists", "not_found"]),
    m("containers.get", "One container.", [p("id", STR, True)],
      S("object", properties={"container": REF("Container")}), ["not_found"]),
    m("containers.list", "Containers in id order, filtered and paged; a page also ends, "
      "with next, before its result passes max_response_bytes less 4 KiB (berth extension).",
      [p("filters", REF("Filters")), p("limit", INT), p("after", STR),
       p("with_status", BOOL, description="add each container's status (berth extension)")],
      S("object", properties={"containers": ARR(REF("Container")), "next": STR}),
      ["invalid_argument"]),
    m("containers.update", "Updates a container's mutable fields.",
      [p("container", REF("ContainerInput"), True),
       p("update_mask", ARR(STR), description="labels, labels.<key>, image, spec, "
         "snapshot_key, extensions, extensions.<key>")],
      S("object", properties={"container": REF("Container")}),
      ["invalid_argument", "not_found"]),
    m("containers.delete", "Deletes a container.",
      [p("id", STR, True), p("keep_snapshot", BOOL)],
      errors=["not_found", "failed_precondition"]),
    m("containers.logs", "The container's log (its tasks' stdout and stderr when they were "
      "created without stdio paths), oldest first. Kept after the task, removed with the "
      "container.", [p("id", STR, True), p("since", STR, description="RFC 3339: entries at or after it"),
       p("tail", INT, description="only the last N matching entries"),
       p("stream", S("string", enum=["stdout", "stderr"]))],
      REF("LogBatch"), ["not_found", "invalid_argument"]),
    m("logs.subscribe", "The container's log as `logs.entries` notifications (LogBatch), "
      "then, with follow, new entries until the task's output ends; the last notification "
      "has end: true. WebSocket and NDJSON only.",
      [p("id", STR, True), p("since", STR, description="RFC 3339: entries at or after it"),
       p("tail", INT, description="only the last N matching entries"),
       p("stream", S("string", enum=["stdout", "stderr"])), p("follow", BOOL)],
      S("string", description="subscription id"), ["not_found", "invalid_argument"],
      **{"x-notification": "logs.entries", "x-unsubscribe": "logs.unsubscribe"}),
    m("events.list", "Stored events after a seq, oldest first.",
      [p("filters", REF("Filters")), p("since", INT), p("limit", INT)],
      S("object", properties={"events": ARR(REF("Event")), "last_seq": INT})),
    m("events.subscribe", "Stored events after `since`, then live ones, as `events.event` "
      "notifications. WebSocket and NDJSON only.",
      [p("filters", REF("Filters")), p("since", INT)],
      S("string", description="subscription id"),
      **{"x-notification": "events.event", "x-unsubscribe": "events.unsubscribe"}),
    m("tasks.create", "Creates the container's task (runc create; rootfs mounted).",
      [p("container_id", STR, True), p("stdin", STR), p("stdout", STR), p("stderr", STR),
       p("terminal", BOOL),
       p("auto_remove", BOOL, description="delete the task and the container once it exits "
                                          "(berth extension)"),
       p("start", BOOL, description="start the init too: one runc run --detach "
                                    "(berth extension)")],
      S("object", properties={"container_id": STR, "pid": INT}),
      ["not_found", "already_exists", "failed_precondition"]),
    m("tasks.start", "Starts the task's init, or an exec process.",
      [p("container_id", STR, True), p("exec_id", STR)],
      S("object", properties={"pid": INT}), ["not_found", "failed_precondition"]),
    m("tasks.write_stdin", "Writes bytes to a process's terminal, or to its stdin FIFO while "
      "berthd holds it open (berth extension; berth attach sends keys with it). Waits at most "
      "5 s for room (resource_exhausted).",
      [p("container_id", STR, True), p("exec_id", STR),
       p("data", STR, True, description="base64, at most 64 KiB decoded")],
      S("object", properties={"written": INT}),
      ["not_found", "invalid_argument", "failed_precondition", "resource_exhausted"]),
    m("tasks.get", "One process of a task.", [p("container_id", STR, True), p("exec_id", STR)],
      S("object", properties={"process": REF("Process")}), ["not_found"]),
    m("tasks.list", "Tasks (their init processes), filtered on status, pid, ...",
      [p("filters", REF("Filters"))],
      S("object", properties={"tasks": ARR(REF("Process"))}), ["invalid_argument"]),
    m("tasks.kill", "Signals a task's init (or every process with all), or an exec process.",
      [p("container_id", STR, True), p("exec_id", STR), p("signal", REF("Signal")),
       p("all", BOOL)], errors=["not_found", "failed_precondition"]),
    m("tasks.wait", "Blocks until the process exits.",
      [p("container_id", STR, True), p("exec_id", STR)],
      REF("ExitInfo"), ["not_found", "unavailable"]),
    m("tasks.delete", "Deletes a stopped task (force kills and waits first).",
      [p("container_id", STR, True), p("force", BOOL)], REF("ExitInfo"),
      ["not_found", "failed_precondition"]),
    m("tasks.exec", "Adds an exec process (start it with tasks.start and its exec_id).",
      [p("container_id", STR, True), p("exec_id", STR, True),
       p("process", OBJ, True, "an OCI process object"), p("terminal", BOOL), p("stdin", STR),
       p("stdout", STR), p("stderr", STR)],
      errors=["not_found", "already_exists", "failed_precondition"]),
    m("tasks.delete_process", "Deletes a stopped exec process.",
      [p("container_id", STR, True), p("exec_id", STR, True)], REF("ExitInfo"),
      ["not_found", "failed_precondition"]),
    m("tasks.resize_pty", "Sets the pty size of a terminal process.",
      [p("container_id", STR, True), p("exec_id", STR), p("width", INT, True),
       p("height", INT, True)], errors=["not_found", "failed_precondition"]),
    m("tasks.close_io", "Closes the process's stdin.",
      [p("container_id", STR, True), p("exec_id", STR)], errors=["not_found"]),
    m("tasks.pause", "Freezes the task.", [p("container_id", STR, True)],
      errors=["not_found", "failed_precondition"]),
    m("tasks.resume", "Thaws the task.", [p("container_id", STR, True)],
      errors=["not_found", "failed_precondition"]),
    m("tasks.pids", "Pids in the task's cgroup.", [p("container_id", STR, True)],
      S("object", properties={"processes": ARR(S("object", properties={"pid": INT}))}),
      ["not_found"]),
    m("tasks.metrics", "cgroup figures (v1 or v2): cpu, memory, pids.",
      [p("container_id", STR, True)],
      S("object", properties={"container_id": STR, "timestamp": STR, "cgroup": STR,
                              "cpu": OBJ, "memory": OBJ, "pids": OBJ}), ["not_found"]),
    m("images.import", "Imports an OCI image-layout tar or a `docker save` tar from the "
      "daemon's filesystem, streamed, and unpacks it into snapshots.",
      [p("path", STR, True), p("name", STR), SN,
       p("platform", STR, description="os/arch[/variant] of a multi-platform image "
                                      "(default the host's); berth extension"),
       p("all_platforms", BOOL, description="keep every platform (each must be in the archive); the host's is unpacked; not with platform")],
      S("object", properties={"images": ARR(REF("Image"))}),
      ["invalid_argument", "not_found", "already_exists"]),
    m("images.pull", "Pulls an image from a registry (OCI distribution API): resolves the "
      "reference (Docker's defaults) to a manifest for the platform, fetches the blobs the "
      "content store lacks (verified by digest and size), unpacks them and names the image.",
      [p("ref", STR, True), p("plain_http", BOOL, description="HTTP instead of HTTPS"),
       p("platform", STR, description="os/arch[/variant], default the host's"), SN],
      S("object", properties={"image": REF("Image")}),
      ["invalid_argument", "not_found", "permission_denied", "failed_precondition",
       "unavailable"]),
    m("images.progress", "Progress of the imports and pulls under way (polled by `berth "
      "images import` and `berth images pull`): `{imports[{path, size, read}], pulls[{ref, "
      "name, phase, layers[{digest, size, read, status}]}]}`.",
      [p("filters", REF("Filters"))], OBJ),
    m("images.list", "Images, filtered.", [p("filters", REF("Filters"))],
      S("object", properties={"images": ARR(REF("Image"))}), ["invalid_argument"]),
    m("images.get", "An image and its OCI image config.", [p("name", STR, True)],
      S("object", properties={"image": REF("Image"), "config": OBJ}), ["not_found"]),
    m("images.tag", "Names the image `source` names `target` too (short names resolve; a "
      "reference is stored in full); an image already named `target` is repointed. "
      "Berth extension.", [p("source", STR, True), p("target", STR, True)],
      S("object", properties={"image": REF("Image")}), ["not_found", "invalid_argument"]),
    m("images.push", "Pushes an image's host-platform manifest, its config and layers to a "
      "registry (OCI distribution) with the credentials images.pull uses: blobs the "
      "repository has are skipped, others are mounted from the repository the image came "
      "from (same registry) or sent in chunks of 8 MiB, the manifest last. "
      "Berth extension.",
      [p("name", STR, True), p("reference", STR, description="default the image's name"),
       p("plain_http", BOOL),
       p("all_platforms", BOOL, description="the whole target: index, every platform's "
                                            "manifest and blobs")],
      S("object", properties={"reference": STR, "digest": STR, "uploaded": INT,
                              "existing": INT, "mounted": INT}),
      ["not_found", "invalid_argument", "permission_denied", "unavailable"]),
    m("images.upload_begin", "Starts an import whose archive the client streams with "
      "images.upload_write (berth extension): no host path is opened.",
      [p("name", STR), SN, p("platform", STR), p("all_platforms", BOOL, description="keep every platform (each must be in the archive); the host's is unpacked; not with platform")],
      S("object", properties={"upload": STR}),
      ["invalid_argument", "resource_exhausted"]),
    m("images.upload_write", "The next bytes of an upload's archive (base64, at most 4 MiB "
      "decoded); waits while the import is behind.",
      [p("upload", STR, True), p("data", STR, True)], OBJ,
      ["not_found", "invalid_argument", "failed_precondition"]),
    m("images.upload_commit", "Ends an upload's stream and answers its import.",
      [p("upload", STR, True)], S("object", properties={"images": ARR(REF("Image"))}),
      ["not_found", "invalid_argument", "failed_precondition"]),
    m("images.upload_abort", "Fails an upload; what it wrote is left for gc. An upload idle "
      "for 60 s is aborted too.", [p("upload", STR, True)],
      S("object", properties={"aborted": BOOL})),
    m("images.export", "Streams images as one tar: an OCI image layout (each image's host "
      "manifest, config and layers, digests unchanged; index.json names them) plus, in the "
      "docker format, docker's manifest.json. Notifications `images.export_data` carry "
      "{data: base64 chunk}, the last {end: true, size}. WebSocket and NDJSON only.",
      [p("names", ARR(STR), True), p("format", S("string", enum=["docker", "oci"])),
       p("all_platforms", BOOL, description="each image's whole target: its index and "
                                            "every platform's blobs")],
      S("string", description="subscription id"),
      ["not_found", "invalid_argument", "failed_precondition"],
      **{"x-notification": "images.export_data", "x-unsubscribe": "images.export_cancel"}),
    m("images.delete", "Deletes an image name (its unreferenced content is collected shortly "
      "after, in the background).",
      [p("name", STR, True)], errors=["not_found"]),
    m("content.list", "Blobs in the content store.", [p("filters", REF("Filters"))],
      S("object", properties={"blobs": ARR(REF("ContentInfo"))})),
    m("content.info", "One blob.", [p("digest", STR, True)],
      S("object", properties={"info": REF("ContentInfo")}), ["not_found", "invalid_argument"]),
    m("content.delete", "Deletes a blob.", [p("digest", STR, True)],
      errors=["not_found", "invalid_argument"]),
    m("snapshots.prepare", "An active (writable) snapshot on an optional committed parent.",
      [p("key", STR, True), p("parent", STR), p("labels", REF("Labels")), SN],
      S("object", properties={"mounts": ARR(REF("Mount"))}),
      ["already_exists", "not_found", "failed_precondition"]),
    m("snapshots.view", "A read-only view of a committed snapshot.",
      [p("key", STR, True), p("parent", STR), p("labels", REF("Labels")), SN],
      S("object", properties={"mounts": ARR(REF("Mount"))}),
      ["already_exists", "not_found", "failed_precondition"]),
    m("snapshots.commit", "Commits an active snapshot under a name.",
      [p("name", STR, True), p("key", STR, True), p("labels", REF("Labels")), SN],
      errors=["not_found", "already_exists", "failed_precondition"]),
    m("snapshots.mounts", "The mounts of an active snapshot or view.", [p("key", STR, True), SN],
      S("object", properties={"mounts": ARR(REF("Mount"))}), ["not_found"]),
    m("snapshots.stat", "One snapshot's info.", [p("key", STR, True), SN],
      S("object", properties={"info": REF("SnapshotInfo")}), ["not_found"]),
    m("snapshots.usage", "Disk usage of one snapshot.", [p("key", STR, True), SN],
      S("object", properties={"size": INT, "inodes": INT}), ["not_found"]),
    m("snapshots.list", "Snapshots, filtered.", [p("filters", REF("Filters")), SN],
      S("object", properties={"snapshots": ARR(REF("SnapshotInfo"))})),
    m("snapshots.remove", "Removes a snapshot without children.", [p("key", STR, True), SN],
      errors=["not_found", "failed_precondition"]),
    m("leases.create", "A lease: resources it holds survive gc.run until it is deleted or "
      "expires.", [p("id", STR), p("labels", REF("Labels")), p("expires_at", STR)],
      S("object", properties={"lease": REF("Lease")}), ["already_exists", "invalid_argument"]),
    m("leases.list", "Leases, filtered.", [p("filters", REF("Filters"))],
      S("object", properties={"leases": ARR(REF("Lease"))})),
    m("leases.delete", "Deletes a lease.", [p("id", STR, True)], errors=["not_found"]),
    m("leases.add_resource", "Adds a resource to a lease.",
      [p("id", STR, True), p("resource", REF("LeaseResource"), True)], errors=["not_found"]),
    m("leases.delete_resource", "Removes a resource from a lease.",
      [p("id", STR, True), p("resource", REF("LeaseResource"), True)], errors=["not_found"]),
    m("leases.list_resources", "A lease's resources.", [p("id", STR, True)],
      S("object", properties={"resources": ARR(REF("LeaseResource"))}), ["not_found"]),
    m("gc.run", "Removes every snapshot and blob nothing references (images, containers, "
      "leases, gc.root labels).", [],
      S("object", properties={"removed": OBJ, "duration_ms": INT})),
    {"name": "events.unsubscribe", "summary": "Ends a subscription.",
     "paramStructure": "either", "params": [p("subscription", STR, True)],
     "result": {"name": "result", "schema": BOOL}},
    {"name": "images.export_cancel", "summary": "Stops an images.export stream.",
     "paramStructure": "either", "params": [p("subscription", STR, True)],
     "result": {"name": "result", "schema": BOOL}},
    {"name": "logs.unsubscribe", "summary": "Ends a logs.subscribe subscription.",
     "paramStructure": "either", "params": [p("subscription", STR, True)],
     "result": {"name": "result", "schema": BOOL}},
]

KINDS = [("invalid_argument", -32602), ("not_found", -32001), ("already_exists", -32002),
         ("failed_precondition", -32003), ("unavailable", -32004),
         ("permission_denied", -32005), ("resource_exhausted", -32006), ("internal", -32603)]
errors = {k: {"code": c, "message": k, "data": {"kind": k}} for k, c in KINDS}

doc = {
    "openrpc": "1.2.6",
    "info": {"title": "berth", "version": "v1",
             "description": "berthd's JSON-RPC 2.0 API over one unix socket (HTTP, WebSocket, "
                            "newline-delimited JSON). Every method also takes `namespace`."},
    "methods": methods,
    "components": {"schemas": schemas, "errors": errors},
}
out = os.path.join(os.path.dirname(__file__), "..", "openrpc.json")
with open(out, "w") as f:
    json.dump(doc, f, indent=1)
    f.write("\n")
