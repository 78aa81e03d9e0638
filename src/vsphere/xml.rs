//! A small element tree over quick-xml's streaming reader, for SOAP
//! responses. Namespaces are resolved, so `xsi:type` values are read by what
//! their prefix means, not by how the server spells it. Large results are
//! read one subtree at a time ([`Document::next_child`]), so a response is
//! never held in memory whole.

use crate::error::{Error, VSphereKind};
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::{Namespace, QName, ResolveResult};
use quick_xml::NsReader;
use std::io::BufRead;

const XSI: &[u8] = b"http://www.w3.org/2001/XMLSchema-instance";
/// How deep elements may nest inside one element read whole. The vSphere
/// API nests a few dozen levels (a snapshot tree of 32 about 40). Deeper
/// answers are refused: the tree is converted and dropped recursively, so
/// a hostile one could overflow the stack, and each level is one or two
/// levels of JSON, of which serde_json reads 128 at most.
const MAX_DEPTH: usize = 60;
const XSD: &[u8] = b"http://www.w3.org/2001/XMLSchema";

/// The type an element declares with `xsi:type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum XsiType {
    /// An XML Schema type (`xsd:string`, `xsd:int`, ...): its local name.
    Schema(String),
    /// A vSphere type (`ArrayOfString`, `ManagedObjectReference`, a data
    /// object or an enum): its WSDL name.
    Vim(String),
}

/// One element: its local name, the attributes the SOAP API uses, its text
/// and its child elements.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Node {
    /// The local name, without prefix.
    pub name: String,
    /// The `xsi:type` attribute, resolved.
    pub xsi_type: Option<XsiType>,
    /// The `type` attribute (the managed type of a `ManagedObjectReference`).
    pub type_attr: Option<String>,
    /// The element's own text, entities resolved.
    pub text: String,
    /// The child elements, in document order.
    pub children: Vec<Node>,
}

impl Node {
    /// The first child element called `name`.
    pub fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|child| child.name == name)
    }

    /// The text of the first child element called `name`.
    pub fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(|child| child.text.as_str())
    }
}

fn xml_error(error: impl std::fmt::Display) -> Error {
    Error::vsphere(
        VSphereKind::Protocol,
        format!("invalid XML from the vSphere host: {error}"),
    )
}

/// A failure to read the next event: the answer breaking off (an I/O error
/// of the body, e.g. fewer bytes than announced), the time running out
/// while it comes in, or text that is not XML.
fn read_error(error: quick_xml::Error) -> Error {
    use std::io::ErrorKind;
    match error {
        quick_xml::Error::Io(io)
            if matches!(io.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock) =>
        {
            Error::vsphere(
                VSphereKind::Timeout,
                "timed out before the answer of the vSphere host was whole",
            )
        }
        quick_xml::Error::Io(io) => Error::vsphere(
            VSphereKind::Unreachable,
            format!("the answer of the vSphere host ends early: {io}"),
        ),
        other => xml_error(other),
    }
}

/// A tag read by [`Document::next_tag`].
enum Tag {
    Start(BytesStart<'static>),
    Empty(BytesStart<'static>),
    End,
}

/// A SOAP response being read: call [`Document::enter`] to descend to the
/// element whose children are wanted, then [`Document::next_child`] for each.
pub(crate) struct Document<R: BufRead> {
    reader: NsReader<R>,
    buffer: Vec<u8>,
    depth: usize,
    empty_entered: bool,
}

impl<R: BufRead> Document<R> {
    pub fn new(input: R) -> Document<R> {
        let mut reader = NsReader::from_reader(input);
        reader.config_mut().trim_text(false);
        Document {
            reader,
            buffer: Vec::with_capacity(4096),
            depth: 0,
            empty_entered: false,
        }
    }

    /// The next start, empty or end tag; `None` at the end of the input.
    /// Text between tags is skipped.
    fn next_tag(&mut self) -> Result<Option<Tag>, Error> {
        loop {
            self.buffer.clear();
            let event = self
                .reader
                .read_event_into(&mut self.buffer)
                .map_err(read_error)?;
            match event {
                Event::Start(start) => return Ok(Some(Tag::Start(start.into_owned()))),
                Event::Empty(start) => return Ok(Some(Tag::Empty(start.into_owned()))),
                Event::End(_) => return Ok(Some(Tag::End)),
                Event::Eof => return Ok(None),
                _ => {}
            }
        }
    }

    /// Reads forward to the next start of an element named `name`, at any
    /// depth, and stays inside it. `Ok(false)` when the document ends first.
    pub fn enter(&mut self, name: &str) -> Result<bool, Error> {
        loop {
            match self.next_tag()? {
                Some(Tag::Start(start)) => {
                    self.depth += 1;
                    if start.local_name().as_ref() == name.as_bytes() {
                        return Ok(true);
                    }
                }
                Some(Tag::End) => self.depth = self.depth.saturating_sub(1),
                Some(Tag::Empty(_)) => {}
                None => return Ok(false),
            }
        }
    }

    /// Enters the response element of a SOAP envelope (the first child of
    /// its Body), ready for [`Document::next_child`] over the return values.
    pub fn enter_response(&mut self) -> Result<(), Error> {
        if !self.enter("Body")? {
            return Err(xml_error("no SOAP Body in the response"));
        }
        if self.next_child_start()?.is_none() {
            return Err(Error::vsphere(
                VSphereKind::Protocol,
                "the vSphere host sent an empty SOAP Body",
            ));
        }
        Ok(())
    }

    /// Steps into the next child element of the element entered last without
    /// reading it, and returns its local name; `None` at that element's end.
    pub fn next_child_start(&mut self) -> Result<Option<String>, Error> {
        let name = |start: &BytesStart<'_>| {
            String::from_utf8_lossy(start.local_name().as_ref()).into_owned()
        };
        match self.next_tag()? {
            Some(Tag::Start(start)) => {
                self.depth += 1;
                Ok(Some(name(&start)))
            }
            Some(Tag::Empty(start)) => {
                // Entered and left at once: the next `next_child` ends it.
                self.empty_entered = true;
                Ok(Some(name(&start)))
            }
            Some(Tag::End) => {
                self.depth = self.depth.saturating_sub(1);
                Ok(None)
            }
            None => Err(xml_error("the response ends early")),
        }
    }

    /// The next child element of the element entered last, read whole; `None`
    /// at that element's end.
    pub fn next_child(&mut self) -> Result<Option<Node>, Error> {
        if std::mem::take(&mut self.empty_entered) {
            return Ok(None);
        }
        match self.next_tag()? {
            Some(Tag::Start(start)) => self.read_element(&start, false).map(Some),
            Some(Tag::Empty(start)) => self.read_element(&start, true).map(Some),
            Some(Tag::End) => {
                self.depth = self.depth.saturating_sub(1);
                Ok(None)
            }
            None => Err(xml_error("the response ends early")),
        }
    }

    /// Reads the element that `start` opened, with everything inside it.
    fn read_element(&mut self, start: &BytesStart<'_>, empty: bool) -> Result<Node, Error> {
        // A stack instead of recursion: a hostile server cannot overflow ours.
        let mut stack = vec![self.node_from_start(start)?];
        if empty {
            return Ok(stack.pop().unwrap_or_default());
        }
        loop {
            self.buffer.clear();
            let event = self
                .reader
                .read_event_into(&mut self.buffer)
                .map_err(read_error)?;
            match event {
                Event::Start(start) => {
                    if stack.len() >= MAX_DEPTH {
                        return Err(xml_error(format!(
                            "elements nested deeper than {MAX_DEPTH} levels"
                        )));
                    }
                    let start = start.into_owned();
                    let node = self.node_from_start(&start)?;
                    stack.push(node);
                }
                Event::Empty(start) => {
                    let start = start.into_owned();
                    let node = self.node_from_start(&start)?;
                    if let Some(parent) = stack.last_mut() {
                        parent.children.push(node);
                    }
                }
                Event::Text(text) => {
                    let text = text.decode().map_err(xml_error)?;
                    if let Some(node) = stack.last_mut() {
                        node.text.push_str(&text);
                    }
                }
                Event::CData(data) => {
                    let text = data.decode().map_err(xml_error)?;
                    if let Some(node) = stack.last_mut() {
                        node.text.push_str(&text);
                    }
                }
                Event::GeneralRef(reference) => {
                    let resolved = match reference.resolve_char_ref().map_err(xml_error)? {
                        Some(character) => character.to_string(),
                        None => {
                            let name = reference.decode().map_err(xml_error)?;
                            quick_xml::escape::resolve_predefined_entity(&name)
                                .ok_or_else(|| xml_error(format!("unknown entity &{name};")))?
                                .to_string()
                        }
                    };
                    if let Some(node) = stack.last_mut() {
                        node.text.push_str(&resolved);
                    }
                }
                Event::End(_) => {
                    let finished = stack.pop().unwrap_or_default();
                    match stack.last_mut() {
                        Some(parent) => parent.children.push(finished),
                        None => return Ok(finished),
                    }
                }
                Event::Eof => return Err(xml_error("the response ends early")),
                _ => {}
            }
        }
    }

    fn node_from_start(&self, start: &BytesStart<'_>) -> Result<Node, Error> {
        let name = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
        let mut node = Node {
            name,
            ..Node::default()
        };
        for attribute in start.attributes() {
            let attribute = attribute.map_err(xml_error)?;
            let (namespace, local) = self.reader.resolve_attribute(attribute.key);
            let value = attribute
                .decode_and_unescape_value(self.reader.decoder())
                .map_err(xml_error)?;
            match (namespace, local.as_ref()) {
                (ResolveResult::Bound(Namespace(XSI)), b"type") => {
                    node.xsi_type = Some(self.resolve_type(&value));
                }
                (ResolveResult::Unbound, b"type") => node.type_attr = Some(value.into_owned()),
                _ => {}
            }
        }
        Ok(node)
    }

    /// Resolves an `xsi:type` value (a QName) by its prefix's namespace.
    fn resolve_type(&self, value: &str) -> XsiType {
        let (namespace, local) = self.reader.resolve_element(QName(value.as_bytes()));
        let local = String::from_utf8_lossy(local.as_ref()).into_owned();
        match namespace {
            ResolveResult::Bound(Namespace(XSD)) => XsiType::Schema(local),
            _ => XsiType::Vim(local),
        }
    }
}

/// Reads a whole (small) response and returns the body's first element,
/// e.g. `RetrieveServiceContentResponse`.
pub(crate) fn parse_body<R: BufRead>(input: R) -> Result<Node, Error> {
    let mut document = Document::new(input);
    if !document.enter("Body")? {
        return Err(xml_error("no SOAP Body in the response"));
    }
    document
        .next_child()?
        .ok_or_else(|| xml_error("an empty SOAP Body"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RESPONSE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"
 xmlns:s="http://www.w3.org/2001/XMLSchema" xmlns:i="http://www.w3.org/2001/XMLSchema-instance">
<soapenv:Body><R xmlns="urn:vim25"><returnval><obj type="VirtualMachine">vm-1</obj>
<val i:type="s:string">a &amp; b &#233;</val><v2 i:type="ArrayOfString"/></returnval></R>
</soapenv:Body></soapenv:Envelope>"#;

    #[test]
    fn resolves_types_by_namespace_and_entities() {
        let body = parse_body(RESPONSE.as_bytes()).unwrap();
        assert_eq!(body.name, "R");
        let returnval = body.child("returnval").unwrap();
        let obj = returnval.child("obj").unwrap();
        assert_eq!(obj.type_attr.as_deref(), Some("VirtualMachine"));
        assert_eq!(obj.text, "vm-1");
        let val = returnval.child("val").unwrap();
        assert_eq!(val.xsi_type, Some(XsiType::Schema("string".into())));
        assert_eq!(val.text, "a & b é");
        let empty = returnval.child("v2").unwrap();
        assert_eq!(empty.xsi_type, Some(XsiType::Vim("ArrayOfString".into())));
    }

    /// Every element of `node`, depth first.
    fn walk(node: &Node, each: &mut dyn FnMut(&Node)) {
        each(node);
        for child in &node.children {
            walk(child, each);
        }
    }

    /// A response with what the readers meet: entities, CDATA, namespaces,
    /// empty elements, references, arrays, nested data objects.
    const RICH: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>
<RetrievePropertiesExResponse xmlns="urn:vim25"><returnval><token>t-1</token><objects><obj type="VirtualMachine">vm-1</obj>
<propSet><name>name</name><val xsi:type="xsd:string">Z&#252;rich &amp; &lt;b&gt; <![CDATA[x<y]]></val></propSet>
<propSet><name>datastore</name><val xsi:type="ArrayOfManagedObjectReference"><ManagedObjectReference type="Datastore">ds-1</ManagedObjectReference></val></propSet>
<propSet><name>summary</name><val xsi:type="VirtualMachineSummary"><vm type="VirtualMachine">vm-1</vm><quickStats><overallCpuUsage>12</overallCpuUsage></quickStats><empty/></val></propSet>
<missingSet><path>config</path><fault><fault xsi:type="NoPermission"></fault></fault></missingSet>
</objects></returnval></RetrievePropertiesExResponse></soapenv:Body></soapenv:Envelope>"#;

    /// Random bytes, and the rich response with random bytes changed or cut
    /// off: the readers and the JSON conversion report errors, never panic,
    /// and a document's children are read to an end.
    #[test]
    fn arbitrary_bytes_never_panic() {
        for input in crate::vsphere::testing::mangled(RICH.as_bytes(), 3000, 0x0b0d_7e57) {
            if let Ok(body) = parse_body(&input[..]) {
                walk(&body, &mut |node| {
                    let _ = crate::vsphere::value::property_value(node);
                });
            }
            let mut document = Document::new(&input[..]);
            if document.enter_response().is_ok() {
                let mut children = 0;
                while let Ok(Some(_)) = document.next_child() {
                    children += 1;
                    assert!(children <= input.len(), "no end to the children");
                }
            }
        }
    }

    #[test]
    fn elements_nested_too_deep_are_an_error() {
        let depth = 200_000;
        let text = format!(
            r#"<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body><R>{}{}</R></e:Body></e:Envelope>"#,
            "<a>".repeat(depth),
            "</a>".repeat(depth)
        );
        let error = parse_body(text.as_bytes()).unwrap_err();
        assert_eq!(
            error.vsphere_kind(),
            Some(&VSphereKind::Protocol),
            "{error}"
        );
        // What the vSphere API nests (a snapshot tree of 32) reads.
        let nested = format!(
            r#"<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body><R>{}{}</R></e:Body></e:Envelope>"#,
            "<childSnapshotList><snapshot/>".repeat(32),
            "</childSnapshotList>".repeat(32)
        );
        assert!(parse_body(nested.as_bytes()).is_ok());
        // As deep as allowed: read, converted and dropped on half the stack
        // of a Rust thread.
        let deepest = format!(
            r#"<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body><R>{}{}</R></e:Body></e:Envelope>"#,
            "<a>".repeat(MAX_DEPTH - 1),
            "</a>".repeat(MAX_DEPTH - 1)
        );
        std::thread::Builder::new()
            .stack_size(1024 * 1024)
            .spawn(move || {
                let body = parse_body(deepest.as_bytes()).unwrap();
                let _ = crate::vsphere::value::property_value(&body);
            })
            .unwrap()
            .join()
            .unwrap();
    }

    #[test]
    fn truncated_input_is_an_error() {
        let cut = &RESPONSE[..RESPONSE.len() / 2];
        assert!(parse_body(cut.as_bytes()).is_err());
        assert!(parse_body("not xml at all".as_bytes()).is_err());
    }
}
