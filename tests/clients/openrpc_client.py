#!/usr/bin/env python3
"""A typed berth client generated from the daemon's own OpenRPC document (issue 12).

`generate(doc)` turns `rpc.discover` into Python source: one class, one method per RPC
(`containers.create` -> `containers_create`), keyword-only parameters named and typed as the
document says (required ones without a default), each call checking its argument types
before anything is sent and checking the result's declared type after. Errors come back as
`RpcError` with the JSON-RPC code and `data.kind`. Standard library only.

Usage: openrpc_client.py SOCKET SPEC_JSON_FILE ID
  drives create -> run -> wait -> delete with the generated client and prints the exit.
"""

import json
import keyword
import socket
import sys

TYPES = {"string": "str", "integer": "int", "boolean": "bool", "array": "list",
         "object": "dict", "number": "float", "null": "type(None)"}


class RpcError(Exception):
    def __init__(self, error):
        super().__init__(error.get("message"))
        self.code = error.get("code")
        self.kind = (error.get("data") or {}).get("kind")


class Connection:
    """NDJSON JSON-RPC 2.0 over berthd's unix socket."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.file = self.sock.makefile("rwb")
        self.next_id = 1

    def call(self, method, params):
        rid = self.next_id
        self.next_id += 1
        line = json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
        self.file.write(line.encode() + b"\n")
        self.file.flush()
        while True:
            reply = json.loads(self.file.readline())
            if reply.get("id") == rid:
                break
        if "error" in reply:
            raise RpcError(reply["error"])
        return reply["result"]


def resolve(schema, doc):
    """Follows a local `$ref` (#/components/...) to the schema it names."""
    while isinstance(schema, dict) and "$ref" in schema:
        node = doc
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        schema = node
    return schema or {}


def py_type(schema, doc):
    """The Python type, or tuple of types, a schema allows (`object`: it cannot tell)."""
    schema = resolve(schema, doc)
    kind = schema.get("type")
    if isinstance(kind, str):
        return TYPES.get(kind, "object")
    if isinstance(kind, list):
        names = [TYPES.get(k, "object") for k in kind]
    else:
        names = [py_type(b, doc) for b in schema.get("anyOf") or schema.get("oneOf") or []]
    if not names or "object" in names:
        return "object"
    return "(" + ", ".join(dict.fromkeys(names)) + ",)"


def generate(doc):
    """Python source of a client class for every method of the OpenRPC document."""
    out = ["class Client:", "    def __init__(self, conn):", "        self.conn = conn", ""]
    for m in doc["methods"]:
        name = m["name"].replace(".", "_")
        params = m.get("params", [])
        sig, checks, body = ["self", "*"], [], []
        for p in sorted(params, key=lambda p: not p.get("required", False)):
            arg = p["name"] + ("_" if keyword.iskeyword(p["name"]) else "")
            t = py_type(p.get("schema"), doc)
            sig.append(f"{arg}: {t}" if p.get("required") else f"{arg}: '{t} | None' = None")
            checks.append(
                f"        if {arg} is not None and not isinstance({arg}, {t}):\n"
                f"            raise TypeError('{m['name']}: {p['name']} must be {t}')")
            body.append(f"        if {arg} is not None: params[{p['name']!r}] = {arg}")
        result = py_type((m.get("result") or {}).get("schema"), doc)
        summary = (m.get("summary") or "").replace("\\", "\\\\").replace('"""', "'")
        out.append(f"    def {name}({', '.join(sig)}) -> {result}:")
        out.append(f'        """{summary}"""')
        out.extend(checks)
        out.append("        params = {}")
        out.extend(body)
        out.append(f"        result = self.conn.call({m['name']!r}, params)")
        if result != "object":
            out.append(f"        if not isinstance(result, {result}):")
            out.append(f"            raise TypeError('{m['name']}: result is not {result}')")
        out.append("        return result")
        out.append("")
    return "\n".join(out)


def main():
    sock, spec_file, cid = sys.argv[1:4]
    conn = Connection(sock)
    doc = conn.call("rpc.discover", {})
    source = generate(doc)
    scope = {}
    exec(compile(source, "<generated berth client>", "exec"), scope)
    client = scope["Client"](conn)
    # The types are enforced before anything is sent.
    try:
        client.tasks_wait(container_id=42)
        raise SystemExit("a wrong type was sent")
    except TypeError:
        pass
    with open(spec_file) as f:
        spec = json.load(f)
    client.containers_create(container={"id": cid, "spec": spec})
    task = client.tasks_create(container_id=cid, start=True)
    assert task["pid"] > 0, task
    exit_ = client.tasks_wait(container_id=cid)
    client.tasks_delete(container_id=cid)
    client.containers_delete(id=cid)
    try:
        client.containers_get(id=cid)
        raise SystemExit("the container survived its delete")
    except RpcError as e:
        assert e.kind == "not_found", (e.code, e.kind)
    methods = source.count("\n    def ") - 1
    print(json.dumps({"methods": methods, "exit_status": exit_["exit_status"]}))


if __name__ == "__main__":
    main()
