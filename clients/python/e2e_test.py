"""End-to-end test of Confstrata's gRPC API from Python.

Generates nothing itself: run it with the directory of stubs generated from
proto/ by grpcio-tools on PYTHONPATH (the Rust test harness in
crates/grpc-api/tests/it/python.rs does that, against a real server):

    python -m grpc_tools.protoc -I proto --python_out=OUT --grpc_python_out=OUT proto/confstrata/v1/*.proto
    CONFSTRATA_TOKEN=cst_... PYTHONPATH=OUT python clients/python/e2e_test.py 127.0.0.1:7400

Every call carries `authorization: Bearer $CONFSTRATA_TOKEN` (an admin token).
"""

import collections
import json
import os
import queue
import sys
import threading

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from confstrata.v1 import config_service_pb2 as svc
from confstrata.v1 import config_service_pb2_grpc as svc_grpc
from confstrata.v1 import template_service_pb2 as tpl
from confstrata.v1 import template_service_pb2_grpc as tpl_grpc
from confstrata.v1 import types_pb2 as types

TIMEOUT = 60  # seconds; a hang guard only


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def run(self, name, fn):
        try:
            fn()
            self.passed += 1
            print(f"ok   {name}")
        except Exception as e:  # noqa: BLE001 - report every failure and go on
            self.failed += 1
            print(f"FAIL {name}: {type(e).__name__}: {e}")


class _Details(collections.namedtuple("_Details", ("method", "timeout", "metadata", "credentials",
                                                  "wait_for_ready", "compression")),
               grpc.ClientCallDetails):
    pass


class Bearer(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Adds `authorization: Bearer <token>` to every call."""

    def __init__(self, token):
        self.token = token

    def _with_token(self, d):
        metadata = list(d.metadata or []) + [("authorization", f"Bearer {self.token}")]
        return _Details(d.method, d.timeout, metadata, d.credentials, d.wait_for_ready, d.compression)

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._with_token(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._with_token(details), request)


def main(addr):
    channel = grpc.insecure_channel(addr)
    grpc.channel_ready_future(channel).result(timeout=TIMEOUT)
    anonymous = svc_grpc.ConfigServiceStub(channel)
    stub = svc_grpc.ConfigServiceStub(grpc.intercept_channel(channel, Bearer(os.environ["CONFSTRATA_TOKEN"])))
    templates = tpl_grpc.TemplateServiceStub(
        grpc.intercept_channel(channel, Bearer(os.environ["CONFSTRATA_TOKEN"])))
    checks = Checks()
    state = {}

    def health():
        h = health_pb2_grpc.HealthStub(channel)
        r = h.Check(health_pb2.HealthCheckRequest(service="confstrata.v1.ConfigService"), timeout=TIMEOUT)
        assert r.status == health_pb2.HealthCheckResponse.SERVING, r

    def reflection():
        r = reflection_pb2_grpc.ServerReflectionStub(channel)
        reqs = iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        names = [s.name for resp in r.ServerReflectionInfo(reqs, timeout=TIMEOUT)
                 for s in resp.list_services_response.service]
        assert "confstrata.v1.ConfigService" in names, names

    def create_and_write():
        spec = types.NamespaceSpec(
            name="pyshop",
            levels=["defaults", "env/{env}"],
            matrix={"env": types.MatrixValues(values=["dev", "prod"])},
        )
        r = stub.CreateNamespace(svc.CreateNamespaceRequest(spec=spec, author="python"), timeout=TIMEOUT)
        assert r.commit.revision >= 1, r
        doc = {"db": {"host": "localhost", "pool": 5, "big": 9007199254740993}, "debug": True}
        stub.PutLayer(svc.PutLayerRequest(namespace="pyshop", layer="defaults",
                                          document_json=json.dumps(doc), author="python"), timeout=TIMEOUT)
        r = stub.SetKeys(svc.SetKeysRequest(
            namespace="pyshop", layer="env/prod",
            entries=[svc.KeyValue(key="db.host", value_json='"db.prod"'),
                     svc.KeyValue(key="debug", value_json="false")]), timeout=TIMEOUT)
        state["rev"] = r.commit.revision

    def resolve():
        r = stub.Resolve(svc.ResolveRequest(namespace="pyshop", context={"env": "prod"},
                                            with_provenance=True), timeout=TIMEOUT)
        doc = json.loads(r.document_json)
        assert doc == {"db": {"host": "db.prod", "pool": 5, "big": 9007199254740993}, "debug": False}, doc
        assert r.provenance["db.host"].layer == "env/prod", r.provenance
        assert r.provenance["db.pool"].layer == "defaults", r.provenance
        assert r.revision == state["rev"], (r.revision, state["rev"])

    def bulk_commit():
        ops = [
            types.Operation(set=types.SetKeyOp(namespace="pyshop", layer="env/dev", key="db.pool", value_json="1")),
            types.Operation(set=types.SetKeyOp(namespace="pyshop", layer="env/prod", key="db.pool", value_json="50")),
            types.Operation(unset=types.UnsetKeyOp(namespace="pyshop", layer="env/prod", key="debug")),
        ]
        cs = types.ChangeSet(author="python", message="bulk from python", ops=ops)
        dry = stub.DryRun(svc.DryRunRequest(change_set=cs), timeout=TIMEOUT)
        assert sorted(l.layer for l in dry.layers) == ["env/dev", "env/prod"], dry
        r = stub.Commit(svc.CommitRequest(change_set=cs), timeout=TIMEOUT)
        assert r.commit.revision == state["rev"] + 1, r
        state["rev"] = r.commit.revision
        doc = json.loads(stub.Resolve(svc.ResolveRequest(namespace="pyshop", context={"env": "prod"}),
                                      timeout=TIMEOUT).document_json)
        assert doc["db"]["pool"] == 50 and doc["debug"] is True, doc

    def watch():
        events = queue.Queue()
        call = stub.Watch(svc.WatchRequest(namespace="pyshop", context={"env": "prod"}), timeout=TIMEOUT)

        def pump():
            try:
                for e in call:
                    events.put(e)
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.CANCELLED:
                    events.put(e)

        threading.Thread(target=pump, daemon=True).start()
        first = events.get(timeout=TIMEOUT)
        assert not first.HasField("info") and first.caught_up_revision == state["rev"], first
        r = stub.SetKeys(svc.SetKeysRequest(namespace="pyshop", layer="env/prod",
                                            entries=[svc.KeyValue(key="db.pool", value_json="75")]), timeout=TIMEOUT)
        e = events.get(timeout=TIMEOUT)
        assert e.info.revision == r.commit.revision, e
        assert json.loads(e.resolved_json)["db"]["pool"] == 75, e.resolved_json
        call.cancel()

    def secrets_and_auth():
        stub.SetKeys(svc.SetKeysRequest(namespace="pyshop", layer="env/prod",
                                        entries=[svc.KeyValue(key="db.pass", value_json='"py-canary-7731"', secret=True)]),
                     timeout=TIMEOUT)
        doc = json.loads(stub.Resolve(svc.ResolveRequest(namespace="pyshop", context={"env": "prod"}),
                                      timeout=TIMEOUT).document_json)
        assert doc["db"]["pass"] == "py-canary-7731", doc  # the admin may read secrets
        layer = json.loads(stub.GetLayer(svc.GetLayerRequest(namespace="pyshop", layer="env/prod"),
                                         timeout=TIMEOUT).layer.document_json)
        assert layer["db"]["pass"] == "py-canary-7731", layer
        for md, code in [(None, grpc.StatusCode.UNAUTHENTICATED),
                         ([("authorization", "Bearer cst_" + "A" * 43)], grpc.StatusCode.UNAUTHENTICATED),
                         ([("authorization", "Basic YWRtaW46YWRtaW4=")], grpc.StatusCode.UNAUTHENTICATED),
                         ([("x-forwarded-for", "127.0.0.1"), ("user-agent", "confstrata-admin")],
                          grpc.StatusCode.UNAUTHENTICATED)]:
            try:
                anonymous.Resolve(svc.ResolveRequest(namespace="pyshop", context={"env": "prod"}),
                                  metadata=md, timeout=TIMEOUT)
                raise AssertionError(f"{md} was let in")
            except grpc.RpcError as e:
                assert e.code() == code, (md, e.code(), e.details())
                assert "py-canary" not in (e.details() or ""), e.details()

    def validation():
        spec = types.NamespaceSpec(
            name="pyvalid", levels=["defaults", "env/{env}"],
            matrix={"env": types.MatrixValues(values=["dev", "prod"])},
            validation_json=json.dumps({
                "schema": {"type": "object", "properties": {"port": {"$ref": "confstrata:port"}}},
                "rules": [{"id": "prod-replicas", "check": 'ctx.env != "prod" || cfg.replicas >= 2',
                           "message": "prod needs 2 replicas, not {{replicas}}", "key": "replicas"}],
            }))
        ops = [types.Operation(put_namespace=types.PutNamespaceOp(spec=spec)),
               types.Operation(put=types.PutLayerOp(namespace="pyvalid", layer="defaults",
                                                    document_json='{"port": 80, "replicas": 2}'))]
        stub.Commit(svc.CommitRequest(change_set=types.ChangeSet(ops=ops)), timeout=TIMEOUT)
        bad = types.ChangeSet(ops=[types.Operation(set=types.SetKeyOp(
            namespace="pyvalid", layer="env/prod", key="replicas", value_json="1"))])
        dry = stub.DryRun(svc.DryRunRequest(change_set=bad), timeout=TIMEOUT)
        assert [(f.rule, f.severity, dict(f.context), f.key) for f in dry.findings] == \
            [("prod-replicas", "error", {"env": "prod"}, "replicas")], dry.findings
        try:
            stub.Commit(svc.CommitRequest(change_set=bad), timeout=TIMEOUT)
            raise AssertionError("an invalid change was committed")
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, (e.code(), e.details())
            assert "validation failed" in e.details() and "prod needs 2 replicas, not 1" in e.details(), e.details()
        v = stub.Validate(svc.ValidateRequest(namespace="pyvalid"), timeout=TIMEOUT)
        assert list(v.findings) == [], v.findings

    def many_findings():
        # 200 contexts x 50 failing rules: 10,000 findings. The refusal must
        # reach the caller (its trailers fit under gRPC C-core's metadata
        # cap), with the total count; DryRun's body carries every finding.
        spec = types.NamespaceSpec(
            name="pymany", levels=["defaults", "k/{k}"],
            matrix={"k": types.MatrixValues(values=[f"v{i}" for i in range(200)])})
        stub.Commit(svc.CommitRequest(change_set=types.ChangeSet(ops=[
            types.Operation(put_namespace=types.PutNamespaceOp(spec=spec)),
            types.Operation(put=types.PutLayerOp(namespace="pymany", layer="defaults", document_json='{"n": 1}'))])),
            timeout=TIMEOUT)
        spec.validation_json = json.dumps({"rules": [
            {"id": f"r{i}", "check": "cfg.n > 1", "message": "n is too small " + "x" * 100} for i in range(50)]})
        declare = types.ChangeSet(ops=[types.Operation(put_namespace=types.PutNamespaceOp(spec=spec))])
        dry = stub.DryRun(svc.DryRunRequest(change_set=declare), timeout=TIMEOUT)
        assert len(dry.findings) == 10_000, len(dry.findings)
        try:
            stub.Commit(svc.CommitRequest(change_set=declare), timeout=TIMEOUT)
            raise AssertionError("a declaration failing 10,000 checks was committed")
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, (e.code(), e.details())
            assert "validation failed with 10000 errors" in e.details(), e.details()
            trailers = dict(e.trailing_metadata() or ())
            assert "grpc-status-details-bin" in trailers, trailers.keys()
            assert len(trailers["grpc-status-details-bin"]) < 8192, len(trailers["grpc-status-details-bin"])
        ns = stub.GetNamespace(svc.GetNamespaceRequest(name="pymany"), timeout=TIMEOUT)
        assert ns.namespace.spec.validation_json == "", "the refused declaration was stored"

    def bad_input():
        cases = [
            (svc.PutLayerRequest(namespace="pyshop", layer="../x", document_json="{}"), grpc.StatusCode.INVALID_ARGUMENT),
            (svc.PutLayerRequest(namespace="pyshop", layer="%2e%2e", document_json="{}"), grpc.StatusCode.INVALID_ARGUMENT),
            # No document is not an empty document.
            (svc.PutLayerRequest(namespace="pyshop", layer="defaults"), grpc.StatusCode.INVALID_ARGUMENT),
            (svc.PutLayerRequest(namespace="pyshop", layer="defaults", document_json='{"$sealed": {"v": 1}}'),
             grpc.StatusCode.INVALID_ARGUMENT),
            (svc.PutLayerRequest(namespace="pyshop", layer="defaults", document_json='{"a": 1, "a": 2}'),
             grpc.StatusCode.INVALID_ARGUMENT),
            (svc.PutLayerRequest(namespace="pyshop", layer="defaults", document_json="{nope"), grpc.StatusCode.INVALID_ARGUMENT),
            (svc.PutLayerRequest(namespace="nope", layer="defaults", document_json="{}"), grpc.StatusCode.NOT_FOUND),
            (svc.PutLayerRequest(namespace="pyshop", layer="defaults", document_json="{}", expect_revision=999),
             grpc.StatusCode.ABORTED),
        ]
        before = stub.ListLayers(svc.ListLayersRequest(namespace="pyshop"), timeout=TIMEOUT)
        for req, code in cases:
            try:
                stub.PutLayer(req, timeout=TIMEOUT)
                raise AssertionError(f"{req.layer!r} was accepted")
            except grpc.RpcError as e:
                assert e.code() == code, (req.layer, e.code(), e.details())
        after = stub.ListLayers(svc.ListLayersRequest(namespace="pyshop"), timeout=TIMEOUT)
        assert before == after, "bad input changed the store"

    def template_service():
        names = [f"{t.name}@{t.version}" for t in templates.ListTemplates(tpl.ListTemplatesRequest(),
                                                                            timeout=TIMEOUT).templates]
        assert "postgres-client@1" in names and "postgres-client@2" in names, names
        one = templates.GetTemplate(tpl.GetTemplateRequest(template="postgres-client"), timeout=TIMEOUT).template
        assert one.source == "library" and json.loads(one.template_json)["generators"], one.source
        params = json.dumps({"host": "db.example.com", "pool_max": 40})
        dry = templates.ApplyTemplate(tpl.ApplyTemplateRequest(template="postgres-client", namespace="pydb",
                                                               parameters_json=params), timeout=TIMEOUT)
        assert dry.HasField("dry_run") and not dry.HasField("commit"), dry
        assert len(dry.dry_run.findings) == 0, dry.dry_run.findings
        made = templates.ApplyTemplate(tpl.ApplyTemplateRequest(template="postgres-client", namespace="pydb",
                                                                parameters_json=params, commit=True),
                                       timeout=TIMEOUT)
        assert made.commit.revision > 0, made
        r = stub.Resolve(svc.ResolveRequest(namespace="pydb", context={"env": "dev", "region": "eu"}),
                         timeout=TIMEOUT)
        doc = json.loads(r.document_json)
        assert doc["pool"]["max_size"] == 10 and doc["postgres"]["host"] == "dev-eu.db.example.com", doc
        x = stub.Explain(svc.ExplainRequest(namespace="pydb", key="pool.max_size",
                                            context={"env": "dev", "region": "eu"}), timeout=TIMEOUT)
        assert x.entries[0].origin.generator == "pool-by-env", x
        d = templates.DiffTemplate(tpl.DiffTemplateRequest(namespace="pydb"), timeout=TIMEOUT)
        assert d.template == "postgres-client@2" and len(d.overrides) == 0, d
        try:
            templates.ApplyTemplate(tpl.ApplyTemplateRequest(template="postgres-client", namespace="pydb2",
                                                             parameters_json='{"pool_max": "many"}'),
                                    timeout=TIMEOUT)
            raise AssertionError("a bad parameter was accepted")
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, (e.code(), e.details())
            assert "parameter pool_max" in e.details(), e.details()

    def namespace_generators():
        spec = types.NamespaceSpec(
            name="pygen",
            levels=["defaults", "env/{env}"],
            matrix={"env": types.MatrixValues(values=["dev", "prod"])},
            generators=[types.Generator(
                id="replicas", level="env/{env}",
                script='if ctx.env == "prod" { #{replicas: 6} } else { #{replicas: 2} }')],
        )
        stub.CreateNamespace(svc.CreateNamespaceRequest(spec=spec, author="python"), timeout=TIMEOUT)
        dry = templates.Generate(tpl.GenerateRequest(namespace="pygen"), timeout=TIMEOUT)
        assert dry.HasField("dry_run") and len(dry.change_set.ops) == 2, dry
        assert sorted((g.layer, json.loads(g.document_json)["replicas"]) for g in dry.generated) == \
            [("env/dev", 2), ("env/prod", 6)], dry.generated
        done = templates.Generate(tpl.GenerateRequest(namespace="pygen", commit=True), timeout=TIMEOUT)
        assert done.commit.revision > 0, done
        again = templates.Generate(tpl.GenerateRequest(namespace="pygen", commit=True), timeout=TIMEOUT)
        assert len(again.change_set.ops) == 0 and not again.HasField("commit"), again
        x = stub.Explain(svc.ExplainRequest(namespace="pygen", key="replicas", context={"env": "prod"}),
                         timeout=TIMEOUT)
        assert x.entries[0].origin.generator == "replicas" and x.entries[0].origin.template == "", x
        bad = types.NamespaceSpec(name="pygen2", levels=["defaults"], generators=[
            types.Generator(id="g", level="defaults", script='config("pygen")')])
        try:
            stub.CreateNamespace(svc.CreateNamespaceRequest(spec=bad), timeout=TIMEOUT)
            raise AssertionError("a generator reading an undeclared namespace was accepted")
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, (e.code(), e.details())
            assert "add it to reads" in e.details(), e.details()

    for name, fn in [("health", health), ("reflection", reflection), ("create and write", create_and_write),
                     ("resolve", resolve), ("bulk commit", bulk_commit), ("watch", watch),
                     ("secrets and auth", secrets_and_auth), ("validation", validation),
                     ("many findings", many_findings), ("bad input", bad_input),
                     ("template service", template_service), ("namespace generators", namespace_generators)]:
        checks.run(name, fn)
    print(f"python e2e: {checks.passed} passed, {checks.failed} failed")
    return 0 if checks.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:7400"))
