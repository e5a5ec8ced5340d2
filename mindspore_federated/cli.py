"""Command-line client of the scheduler REST API (stdlib only): prints the JSON reply, exit 0 on code "0"."""
import argparse
import json
import os
import ssl
import sys
import urllib.error
import urllib.request

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_UNREACHABLE = 2
EXIT_BAD_REPLY = 3
TOKEN_ENV = "MSF_MANAGE_TOKEN"   # the scheduler's (scheduler/access.py); this client stays stdlib-only

# command -> (path, HTTP method); the scheduler does not check the method, these follow the reference tool.
COMMANDS = {
    "state": ("/state", "GET"),
    "enable": ("/enableFLS", "POST"),
    "disable": ("/disableFLS", "POST"),
    "new-instance": ("/newInstance", "POST"),
    "query": ("/queryInstance", "POST"),
    "nodes": ("/nodes", "GET"),
    "scale-out": ("/scaleout", "POST"),
    "scale-in": ("/scalein", "POST"),
}


def parse_value(text: str):
    """`k=v` values: JSON literals (ints, floats, true/false, quoted strings) else the raw string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_params(items) -> dict:
    """`--param k=v` (repeatable; each may also hold `k=v,k=v` like the reference's --instance_param)."""
    params = {}
    for item in items or ():
        for pair in filter(None, item.split(",")):
            key, sep, value = pair.partition("=")
            if not sep or not key.strip():
                raise ValueError(f"invalid --param {pair!r}: expected key=value")
            params[key.strip()] = parse_value(value.strip())
    return params


def request_body(args):
    """The JSON body of the command (None for commands without one)."""
    if args.command == "new-instance":
        return parse_params(args.param)
    if args.command == "scale-out":
        return {"server_num": args.server_num, "worker_num": 0}
    if args.command == "scale-in":
        return {"node_ids": [n for n in (args.node_ids or "").split(",") if n]}
    return None


def call(address, command, body=None, https=False, cafile=None, timeout=10.0, token=None):
    """Sends one request (with the bearer `token`, default: the environment's MSF_MANAGE_TOKEN); returns
    (HTTP status, reply bytes). Raises URLError when unreachable."""
    path, method = COMMANDS[command]
    url = f"{'https' if https else 'http'}://{address}{path}"
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    token = token if token is not None else os.environ.get(TOKEN_ENV, "")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    context = ssl.create_default_context(cafile=cafile) if https else None
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=context) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, err.read()


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m mindspore_federated.cli",
                                     description="Manage a MindSpore Federated cluster through its scheduler.")
    parser.add_argument("command", choices=sorted(COMMANDS))
    parser.add_argument("--address", default="127.0.0.1:11202", help="scheduler manage address ip:port")
    parser.add_argument("--param", action="append", metavar="K=V", help="new-instance hyper-parameter")
    parser.add_argument("--server-num", type=int, default=None, help="scale-out: servers to add")
    parser.add_argument("--node-ids", default=None, help="scale-in: comma-separated node ids")
    parser.add_argument("--https", action="store_true", help="the scheduler serves HTTPS (enable_ssl)")
    parser.add_argument("--cafile", default=None, help="CA certificate to verify the scheduler")
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--token", default=None,
                        help=f"bearer token of the management plane (default: the environment's {TOKEN_ENV})")
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "scale-out" and args.server_num is None:
        parser.error("scale-out needs --server-num")
    if args.command == "scale-in" and not args.node_ids:
        parser.error("scale-in needs --node-ids")
    try:
        body = request_body(args)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        status, raw = call(args.address, args.command, body, args.https, args.cafile, args.timeout, args.token)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        print(f"error: cannot reach the scheduler at {args.address}: {reason}", file=sys.stderr)
        return EXIT_UNREACHABLE
    try:
        reply = json.loads(raw)
    except ValueError:
        print(f"error: HTTP {status} with a non-JSON reply: {raw[:200]!r}", file=sys.stderr)
        return EXIT_BAD_REPLY
    print(json.dumps(reply, indent=2, sort_keys=True))
    if isinstance(reply, dict) and reply.get("code") == "0":
        return EXIT_OK
    return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
