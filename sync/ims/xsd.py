"""Compile the XML Schemas inlined in a WSDL (WCF ?singleWsdl style) into one lxml validator.

Used by the emulator to validate requests against our own WSDL, and by the tests to validate what
the client sends and the emulator answers against itslearning's published WSDLs.
"""

from __future__ import annotations

from pathlib import Path

from lxml import etree

from sync.ims.namespaces import WSDL

__all__ = ["XS", "load_wsdl_schema", "load_xsd_files", "safe_parser"]

XS = "http://www.w3.org/2001/XMLSchema"


def safe_parser(*, huge_tree: bool = False) -> etree.XMLParser:
    """An lxml parser that never resolves entities, loads DTDs or touches the network."""
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=huge_tree,
        remove_blank_text=False,
    )


class _MemoryResolver(etree.Resolver):
    """Resolves `mem:<namespace>` schema locations to schema documents held in memory."""

    def __init__(self, documents: dict[str, bytes]) -> None:
        super().__init__()
        self._documents = documents

    def resolve(self, system_url: str, public_id: str, context: object) -> object:  # type: ignore[override]  # lxml-stubs lag lxml
        """Return the in-memory schema for a `mem:` URL; anything else is refused (None)."""
        document = self._documents.get(system_url)
        if document is None:
            return None
        return self.resolve_string(document, context)  # type: ignore[call-arg]


def _compile(schemas: list[etree._Element]) -> etree.XMLSchema:
    documents: dict[str, bytes] = {}
    by_ns: dict[str, etree._Element] = {}
    for schema in schemas:
        by_ns.setdefault(schema.get("targetNamespace", ""), schema)
    for ns, schema in by_ns.items():
        copy = etree.fromstring(etree.tostring(schema), safe_parser())
        for imp in copy.findall(f"{{{XS}}}import"):
            target = imp.get("namespace", "")
            if target in by_ns:
                imp.set("schemaLocation", f"mem:{target}")
        documents[f"mem:{ns}"] = etree.tostring(copy)
    root = etree.Element(f"{{{XS}}}schema", nsmap={"xs": XS})
    for ns in by_ns:
        etree.SubElement(root, f"{{{XS}}}import", namespace=ns, schemaLocation=f"mem:{ns}")
    parser = safe_parser()
    parser.resolvers.add(_MemoryResolver(documents))
    return etree.XMLSchema(etree.fromstring(etree.tostring(root), parser))


def load_wsdl_schema(*wsdl_paths: Path) -> etree.XMLSchema:
    """One validator for every `xs:schema` inside the `wsdl:types` of the given WSDL files.

    Where two files define the same target namespace, the first file's schema wins.

    Raises:
        etree.XMLSchemaParseError: the schemas do not compile.
    """
    schemas: list[etree._Element] = []
    for path in wsdl_paths:
        tree = etree.parse(str(path), safe_parser())
        schemas.extend(tree.getroot().iterfind(f"{{{WSDL}}}types/{{{XS}}}schema"))
    return _compile(schemas)


def load_xsd_files(*xsd_paths: Path, wsdl_paths: tuple[Path, ...] = ()) -> etree.XMLSchema:
    """One validator for standalone XSD files, optionally together with the schemas of WSDLs."""
    schemas = [etree.parse(str(p), safe_parser()).getroot() for p in xsd_paths]
    for path in wsdl_paths:
        tree = etree.parse(str(path), safe_parser())
        schemas.extend(tree.getroot().iterfind(f"{{{WSDL}}}types/{{{XS}}}schema"))
    return _compile(schemas)
