//! The property collector: properties of every object of a type (through a
//! container view over the whole inventory) or of given objects, read one
//! object at a time as the response streams in, with result paging followed
//! (`RetrievePropertiesEx`, then `ContinueRetrievePropertiesEx` while the
//! server hands out a token).

use crate::error::{Error, VSphereKind};
use crate::sync::Lock;
use crate::vsphere::session::{Connection, Session};
use crate::vsphere::soap::{element, escape, MoRef};
use crate::vsphere::xml::{Document, Node, XsiType};
use std::fmt::Write as _;
use std::io::BufRead;
use std::time::Instant;

/// One object of a result: its reference and the properties the server
/// returned, as raw `<val>` elements in the server's order.
#[derive(Debug)]
pub(crate) struct ObjectContent {
    pub obj: MoRef,
    pub props: Vec<(String, Node)>,
}

impl ObjectContent {
    /// The value element of property `path`.
    pub fn get(&self, path: &str) -> Option<&Node> {
        self.props
            .iter()
            .find(|(name, _)| name == path)
            .map(|(_, value)| value)
    }
}

/// Which objects to read.
pub(crate) enum Scope<'a> {
    /// Every object of the managed type in the inventory.
    All,
    /// These objects.
    Objects(&'a [MoRef]),
}

/// Reads `paths` of the objects of managed type `kind` in `scope`, calling
/// `each` per object as it arrives.
pub(crate) fn retrieve(
    connection: &Connection,
    kind: &str,
    scope: Scope<'_>,
    paths: &[&str],
    deadline: Instant,
    each: &mut dyn FnMut(ObjectContent) -> Result<(), Error>,
) -> Result<(), Error> {
    if let Scope::Objects(objects) = scope {
        if objects.is_empty() {
            return Ok(());
        }
    }
    let spec = |session: &Session| -> Result<String, Error> {
        let mut out = String::from("<specSet><propSet>");
        element(&mut out, "type", kind);
        out.push_str(if paths.is_empty() {
            "<all>true</all>"
        } else {
            "<all>false</all>"
        });
        for path in paths {
            element(&mut out, "pathSet", path);
        }
        out.push_str("</propSet>");
        match scope {
            Scope::All => {
                let view = container_view(connection, session, kind, deadline)?;
                out.push_str("<objectSet>");
                view.write(&mut out, "obj");
                out.push_str(
                    "<skip>true</skip><selectSet xsi:type=\"TraversalSpec\"><name>traverseEntities</name>\
                     <type>ContainerView</type><path>view</path><skip>false</skip></selectSet></objectSet>",
                );
            }
            Scope::Objects(objects) => {
                for object in objects {
                    out.push_str("<objectSet>");
                    object.write(&mut out, "obj");
                    out.push_str("<skip>false</skip></objectSet>");
                }
            }
        }
        out.push_str("</specSet><options></options>");
        Ok(out)
    };
    let collector = |session: &Session| session.service("propertyCollector");
    let first_page = |each: &mut dyn FnMut(ObjectContent) -> Result<(), Error>| {
        connection.invoke(
            "RetrievePropertiesEx",
            &collector,
            &spec,
            deadline,
            &mut |body| read_result(body, each),
        )
    };
    let mut token = match first_page(each) {
        // The session's container view is gone (destroyed, or the server
        // restarted and lost it): make a new one and ask once more.
        Err(error) if error.is_fault("ManagedObjectNotFound") && matches!(scope, Scope::All) => {
            forget_view(connection, kind);
            first_page(each)?
        }
        other => other?,
    };
    while let Some(current) = token.take() {
        let args = |_: &Session| {
            let mut out = String::new();
            element(&mut out, "token", &current);
            Ok(out)
        };
        token = connection.invoke(
            "ContinueRetrievePropertiesEx",
            &collector,
            &args,
            deadline,
            &mut |body| read_result(body, each),
        )?;
    }
    Ok(())
}

/// Reads one page of a `RetrieveResult`, returning its continuation token.
pub(crate) fn read_result(
    body: &mut dyn BufRead,
    each: &mut dyn FnMut(ObjectContent) -> Result<(), Error>,
) -> Result<Option<String>, Error> {
    let mut document = Document::new(body);
    document.enter_response()?;
    // No `returnval` at all: nothing matched.
    if document.next_child_start()?.is_none() {
        return Ok(None);
    }
    let mut token = None;
    while let Some(node) = document.next_child()? {
        match node.name.as_str() {
            "token" => token = Some(node.text),
            "objects" => each(object_content(node)?)?,
            _ => {}
        }
    }
    Ok(token)
}

fn object_content(node: Node) -> Result<ObjectContent, Error> {
    let mut obj = None;
    let mut props = Vec::new();
    for child in node.children {
        match child.name.as_str() {
            "obj" => obj = MoRef::from_node(&child),
            "propSet" => {
                let mut name = None;
                let mut value = None;
                for part in child.children {
                    match part.name.as_str() {
                        "name" => name = Some(part.text),
                        "val" => value = Some(part),
                        _ => {}
                    }
                }
                if let (Some(name), Some(value)) = (name, value) {
                    props.push((name, value));
                }
            }
            // A property the server could not read. Not being logged in
            // (vcsim answers so for a session it does not know, where
            // vCenter faults the whole call) is the session's failure: the
            // caller logs in again and asks once more. Others (no permission
            // on one property) leave the property out, as py-vpoller does.
            "missingSet" => {
                let fault = child
                    .child("fault")
                    .and_then(|fault| fault.child("fault"))
                    .and_then(|fault| match &fault.xsi_type {
                        Some(XsiType::Vim(name)) => Some(name.clone()),
                        _ => None,
                    });
                if fault.as_deref() == Some("NotAuthenticated") {
                    return Err(Error::fault(
                        "NotAuthenticated",
                        "the session is not authenticated",
                    ));
                }
            }
            _ => {}
        }
    }
    let obj =
        obj.ok_or_else(|| Error::vsphere(VSphereKind::Protocol, "an object without a reference"))?;
    Ok(ObjectContent { obj, props })
}

/// The session's container view of every `kind` object, made on first use.
pub(crate) fn container_view(
    connection: &Connection,
    session: &Session,
    kind: &str,
    deadline: Instant,
) -> Result<MoRef, Error> {
    if let Some(view) = session.views.locked().get(kind) {
        return Ok(view.clone());
    }
    let root = session.service("rootFolder")?;
    let mut args = String::new();
    root.write(&mut args, "container");
    let _ = write!(
        args,
        "<type>{}</type><recursive>true</recursive>",
        escape(kind)
    );
    let created = connection.call(
        "CreateContainerView",
        &|session: &Session| session.service("viewManager"),
        &|_: &Session| Ok(args.clone()),
        deadline,
    )?;
    let view = created.first().and_then(MoRef::from_node).ok_or_else(|| {
        Error::vsphere(
            VSphereKind::Protocol,
            "CreateContainerView returned no view",
        )
    })?;
    // The view belongs to the session the call ended in, which is a new one
    // when the call had to log in again.
    let current = connection.current();
    let owner = current.as_deref().unwrap_or(session);
    owner.views.locked().insert(kind.to_owned(), view.clone());
    Ok(view)
}

/// Drops the current session's container view of `kind`.
pub(crate) fn forget_view(connection: &Connection, kind: &str) {
    if let Some(session) = connection.current() {
        session.views.locked().remove(kind);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vsphere::testing::mangled;

    const PAGE: &str = r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><RetrievePropertiesExResponse xmlns="urn:vim25"><returnval><token>next</token><objects><obj type="VirtualMachine">vm-1</obj><propSet><name>name</name><val xsi:type="xsd:string">vm-1</val></propSet><missingSet><path>x</path><fault><fault xsi:type="NoPermission"/></fault></missingSet></objects><objects><propSet><name>name</name></propSet></objects></returnval></RetrievePropertiesExResponse></soapenv:Body></soapenv:Envelope>"#;

    #[test]
    fn a_page_reads_its_objects_and_token() {
        let mut names = Vec::new();
        let outcome = read_result(&mut PAGE.as_bytes(), &mut |object| {
            names.push(object.obj.id);
            Ok(())
        });
        // The second object has no reference: an error, after the first.
        assert_eq!(names, ["vm-1"]);
        let error = outcome.unwrap_err();
        assert_eq!(
            error.vsphere_kind(),
            Some(&VSphereKind::Protocol),
            "{error}"
        );
    }

    #[test]
    fn arbitrary_pages_never_panic() {
        for input in mangled(PAGE.as_bytes(), 3000, 0x9a6e) {
            let _ = read_result(&mut &input[..], &mut |_| Ok(()));
        }
    }
}
