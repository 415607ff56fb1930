"""JSON schemas for kubeconform, made here rather than downloaded: one self-contained file per
kind, from the API server's OpenAPI v3 documents and from CustomResourceDefinitions.

kubeconform finds a kind's schema through its `-schema-location` template; `LOCATION` is the
one these files are written for (`{{ .Group }}` is the apiVersion's group, or `v1` for the
core group, whose apiVersion has none). Every object schema that lists its properties is made
closed (`additionalProperties: false`), as kubeconform's `-strict` schemas are, so a field the
API does not know is reported rather than ignored.
"""

import concurrent.futures
import copy
import json
import pathlib

LOCATION = "{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json"
OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
REF_PREFIX = "#/components/schemas/"


def path_for(root, group, version, kind):
    """Where LOCATION makes kubeconform look for a kind's schema."""
    return pathlib.Path(root) / (group or "v1") / f"{kind.lower()}_{version}.json"


def _subschemas(node):
    """The schemas directly inside a schema (not the values of default, enum or example)."""
    for key in ("properties", "patternProperties", "definitions"):
        yield from (node.get(key) or {}).values()
    for key in ("additionalProperties", "not", "items"):
        if isinstance(node.get(key), dict):
            yield node[key]
    for key in ("allOf", "anyOf", "oneOf", "items"):
        if isinstance(node.get(key), list):
            yield from node[key]


def _strict(node):
    """Closes every object schema that lists its properties and does not keep unknown fields;
    turns OpenAPI's `nullable` into JSON Schema's null type. In place."""
    if node.get("properties") is not None and "additionalProperties" not in node \
            and not node.get("x-kubernetes-preserve-unknown-fields"):
        node["additionalProperties"] = False
    if node.get("nullable") and isinstance(node.get("type"), str):
        node["type"] = [node["type"], "null"]
    for sub in _subschemas(node):
        _strict(sub)


def _refs(node, found):
    """Names of the component schemas `node` refers to, rewriting each `$ref` to point into
    the file's own definitions. In place."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(REF_PREFIX):
            name = ref[len(REF_PREFIX):]
            node["$ref"] = "#/definitions/" + name
            found.add(name)
        for value in node.values():
            _refs(value, found)
    elif isinstance(node, list):
        for value in node:
            _refs(value, found)


def _closure(components, root):
    """A copy of `root` and the definitions it reaches, with every reference rewritten."""
    root = copy.deepcopy(root)
    pending, definitions = set(), {}
    _refs(root, pending)
    while pending:
        name = pending.pop()
        if name in definitions:
            continue
        definitions[name] = copy.deepcopy(components[name])
        found = set()
        _refs(definitions[name], found)
        pending |= found - definitions.keys()
    return root, definitions


def _document(components, root):
    schema, definitions = _closure(components, root)
    if definitions:
        schema["definitions"] = definitions
    _strict(schema)
    return schema


def from_openapi_v3(path, document):
    """{(group, version, kind): schema} for every kind of the group-version a document
    serves (`path` as the API server names it: `api/v1`, `apis/apps/v1`). Kinds of other
    group-versions it mentions (DeleteOptions lists every group) are left to their own."""
    parts = path.split("/")
    group, version = ("", parts[1]) if parts[0] == "api" else (parts[1], parts[2])
    components = document["components"]["schemas"]
    out = {}
    for schema in components.values():
        for gvk in schema.get("x-kubernetes-group-version-kind") or []:
            if (gvk["group"], gvk["version"]) == (group, version):
                out[(group, version, gvk["kind"])] = _document(components, schema)
    return out


def from_crd(crd, meta_components):
    """{(group, version, kind): schema} for each version of a CRD. Its openAPIV3Schema does not
    describe apiVersion, kind and metadata, which the API server adds; they are added here,
    metadata as the API server's ObjectMeta (`meta_components` holds it)."""
    spec = crd["spec"]
    out = {}
    for version in spec["versions"]:
        schema = copy.deepcopy(version["schema"]["openAPIV3Schema"])
        props = schema.setdefault("properties", {})
        props.setdefault("apiVersion", {"type": "string"})
        props.setdefault("kind", {"type": "string"})
        props["metadata"] = {"$ref": REF_PREFIX + OBJECT_META}
        out[(spec["group"], version["name"], spec["names"]["kind"])] = _document(meta_components, schema)
    return out


def fetch_openapi_v3(kubectl):
    """Every group-version document the API server serves, fetched in parallel:
    {"apis/apps/v1": document, "api/v1": document, ...}."""
    index = json.loads(kubectl("get", "--raw", "/openapi/v3").stdout)["paths"]
    wanted = [p for p in index if p == "api/v1" or (p.startswith("apis/") and p.count("/") == 2)]

    def get(path):
        return path, json.loads(kubectl("get", "--raw", f"/openapi/v3/{path}").stdout)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        return dict(pool.map(get, wanted))


def write(root, schemas):
    """Writes each schema where LOCATION points kubeconform; returns how many."""
    for (group, version, kind), schema in schemas.items():
        path = path_for(root, group, version, kind)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(schema))
    return len(schemas)
