//! The property collector's wait side, for a synchronized copy of server
//! state: a private collector (`CreatePropertyCollector`), filters over a
//! container view (`CreateFilter`), and the changes `WaitForUpdatesEx`
//! reports (enter, modify and leave of objects; assign, add and remove of
//! properties, also of one element of an array, `device[4000]`), with the
//! rule that applies one change to a property value. Knows nothing of
//! what the copy is for.

use crate::error::{Error, VSphereKind};
use crate::vsphere::session::{Connection, Session};
use crate::vsphere::soap::{element, MoRef};
use crate::vsphere::xml::{Document, Node};
use std::time::Instant;

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ObjectChange {
    /// It entered the filter's set (or the first update names it).
    Enter,
    /// Some of its properties changed.
    Modify,
    /// It left the set (deleted, or out of the view).
    Leave,
}

/// What happened to a property (or a part of it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChangeOp {
    /// The value is the one given; no value: unset.
    Assign,
    /// An element was added to an array.
    Add,
    /// An element (or the value) was removed.
    Remove,
    /// Removed because the object a reference points at went away.
    IndirectRemove,
}

/// One change of a property: its path (`name`, `runtime.powerState`,
/// `config.hardware.device[4000]`), how it changed, and the new value.
#[derive(Debug, Clone)]
pub(crate) struct PropertyChange {
    pub name: String,
    pub op: ChangeOp,
    /// The `<val>` element; `None` for an unset value or a removal.
    pub val: Option<Node>,
}

/// The changes of one object.
#[derive(Debug, Clone)]
pub(crate) struct ObjectUpdate {
    pub kind: ObjectChange,
    pub obj: MoRef,
    pub changes: Vec<PropertyChange>,
}

/// The changes one filter reports.
#[derive(Debug, Clone)]
pub(crate) struct FilterUpdate {
    pub filter: MoRef,
    pub objects: Vec<ObjectUpdate>,
}

/// One answer of `WaitForUpdatesEx`.
#[derive(Debug, Clone, Default)]
pub(crate) struct UpdateSet {
    /// The version to ask with next.
    pub version: String,
    /// More changes are ready: ask again at once with `version`.
    pub truncated: bool,
    pub filters: Vec<FilterUpdate>,
}

/// The default property collector of the session.
fn session_collector(session: &Session) -> Result<MoRef, Error> {
    session.service("propertyCollector")
}

/// A collector of the current session's own: its filters and wait are
/// nobody else's. It dies with the session.
pub(crate) fn create_collector(
    connection: &Connection,
    deadline: Instant,
) -> Result<(MoRef, u64), Error> {
    let returned = connection.call(
        "CreatePropertyCollector",
        &session_collector,
        &|_: &Session| Ok(String::new()),
        deadline,
    )?;
    let collector = returned.first().and_then(MoRef::from_node).ok_or_else(|| {
        Error::vsphere(
            VSphereKind::Protocol,
            "CreatePropertyCollector returned no collector",
        )
    })?;
    let epoch = connection.current().map_or(0, |session| session.epoch);
    Ok((collector, epoch))
}

/// Calls `method` on `this` with `args`, wanting no answer.
fn call_on(
    connection: &Connection,
    method: &str,
    this: &MoRef,
    args: String,
    deadline: Instant,
) -> Result<Vec<Node>, Error> {
    connection.call(
        method,
        &|_: &Session| Ok(this.clone()),
        &|_: &Session| Ok(args.clone()),
        deadline,
    )
}

/// Gives the collector back (its filters go with it).
pub(crate) fn destroy_collector(
    connection: &Connection,
    collector: &MoRef,
    deadline: Instant,
) -> Result<(), Error> {
    call_on(
        connection,
        "DestroyPropertyCollector",
        collector,
        String::new(),
        deadline,
    )
    .map(drop)
}

/// The `PropertyFilterSpec` (its inner XML) for every object of `kind` in
/// `view` (a container view) with `paths`, and the view's own `view`
/// property: the objects in the view, in its order.
pub(crate) fn view_spec(view: &MoRef, kind: &str, paths: &[&str]) -> String {
    let mut out = String::from("<propSet><type>ContainerView</type><all>false</all><pathSet>view</pathSet></propSet><propSet>");
    element(&mut out, "type", kind);
    out.push_str("<all>false</all>");
    for path in paths {
        element(&mut out, "pathSet", path);
    }
    out.push_str("</propSet><objectSet>");
    view.write(&mut out, "obj");
    out.push_str(
        "<skip>false</skip><selectSet xsi:type=\"TraversalSpec\"><name>traverseView</name>\
         <type>ContainerView</type><path>view</path><skip>false</skip></selectSet></objectSet>",
    );
    out
}

/// Adds a filter with `spec` (from [`view_spec`]) to `collector`.
pub(crate) fn create_filter(
    connection: &Connection,
    collector: &MoRef,
    spec: &str,
    deadline: Instant,
) -> Result<MoRef, Error> {
    let args = format!("<spec>{spec}</spec><partialUpdates>false</partialUpdates>");
    let returned = call_on(connection, "CreateFilter", collector, args, deadline)?;
    returned
        .first()
        .and_then(MoRef::from_node)
        .ok_or_else(|| Error::vsphere(VSphereKind::Protocol, "CreateFilter returned no filter"))
}

/// Removes a filter.
pub(crate) fn destroy_filter(
    connection: &Connection,
    filter: &MoRef,
    deadline: Instant,
) -> Result<(), Error> {
    call_on(
        connection,
        "DestroyPropertyFilter",
        filter,
        String::new(),
        deadline,
    )
    .map(drop)
}

/// Asks `collector` for the changes since `version` ("" for the whole
/// state), waiting up to `max_wait_s` seconds for one; `None` when none
/// came in that time. At most `max_object_updates` objects per answer
/// (the rest follow, `truncated`).
pub(crate) fn wait_for_updates(
    connection: &Connection,
    collector: &MoRef,
    version: &str,
    max_wait_s: u32,
    max_object_updates: u32,
    deadline: Instant,
) -> Result<Option<UpdateSet>, Error> {
    let mut args = String::new();
    element(&mut args, "version", version);
    args.push_str("<options>");
    element(&mut args, "maxWaitSeconds", &max_wait_s.to_string());
    element(
        &mut args,
        "maxObjectUpdates",
        &max_object_updates.to_string(),
    );
    args.push_str("</options>");
    connection.invoke(
        "WaitForUpdatesEx",
        &|_: &Session| Ok(collector.clone()),
        &|_: &Session| Ok(args.clone()),
        deadline,
        &mut |body| read_update_set(body),
    )
}

/// Ends a wait under way on `collector` (it fails with `RequestCanceled`).
pub(crate) fn cancel_wait(
    connection: &Connection,
    collector: &MoRef,
    deadline: Instant,
) -> Result<(), Error> {
    call_on(
        connection,
        "CancelWaitForUpdates",
        collector,
        String::new(),
        deadline,
    )
    .map(drop)
}

/// Reads a `WaitForUpdatesExResponse`.
pub(crate) fn read_update_set(body: &mut dyn std::io::BufRead) -> Result<Option<UpdateSet>, Error> {
    let mut document = Document::new(body);
    document.enter_response()?;
    if document.next_child_start()?.is_none() {
        return Ok(None);
    }
    let mut set = UpdateSet::default();
    while let Some(node) = document.next_child()? {
        match node.name.as_str() {
            "version" => set.version = node.text,
            "truncated" => set.truncated = node.text == "true",
            "filterSet" => set.filters.push(filter_update(node)?),
            _ => {}
        }
    }
    Ok(Some(set))
}

fn protocol(what: &str) -> Error {
    Error::vsphere(VSphereKind::Protocol, format!("an update set with {what}"))
}

fn filter_update(node: Node) -> Result<FilterUpdate, Error> {
    let mut filter = None;
    let mut objects = Vec::new();
    for child in node.children {
        match child.name.as_str() {
            "filter" => filter = MoRef::from_node(&child),
            "objectSet" => objects.push(object_update(child)?),
            _ => {}
        }
    }
    Ok(FilterUpdate {
        filter: filter.ok_or_else(|| protocol("a filter update naming no filter"))?,
        objects,
    })
}

fn object_update(node: Node) -> Result<ObjectUpdate, Error> {
    let mut kind = None;
    let mut obj = None;
    let mut changes = Vec::new();
    for child in node.children {
        match child.name.as_str() {
            "kind" => {
                kind = Some(match child.text.as_str() {
                    "enter" => ObjectChange::Enter,
                    "modify" => ObjectChange::Modify,
                    "leave" => ObjectChange::Leave,
                    _ => return Err(protocol("an unknown kind of object update")),
                })
            }
            "obj" => obj = MoRef::from_node(&child),
            "changeSet" => changes.push(property_change(child)?),
            // A property that can no longer be read: unset, as a read
            // would leave it out.
            "missingSet" => {
                if let Some(path) = child.child_text("path") {
                    changes.push(PropertyChange {
                        name: path.to_owned(),
                        op: ChangeOp::Assign,
                        val: None,
                    });
                }
            }
            _ => {}
        }
    }
    Ok(ObjectUpdate {
        kind: kind.ok_or_else(|| protocol("an object update of no kind"))?,
        obj: obj.ok_or_else(|| protocol("an object update naming no object"))?,
        changes,
    })
}

fn property_change(node: Node) -> Result<PropertyChange, Error> {
    let mut name = None;
    let mut op = None;
    let mut val = None;
    for child in node.children {
        match child.name.as_str() {
            "name" => name = Some(child.text),
            "op" => {
                op = Some(match child.text.as_str() {
                    "assign" => ChangeOp::Assign,
                    "add" => ChangeOp::Add,
                    "remove" => ChangeOp::Remove,
                    "indirectRemove" => ChangeOp::IndirectRemove,
                    _ => return Err(protocol("an unknown change operation")),
                })
            }
            "val" => val = Some(child),
            _ => {}
        }
    }
    Ok(PropertyChange {
        name: name.ok_or_else(|| protocol("a change naming no property"))?,
        op: op.ok_or_else(|| protocol("a change of no operation"))?,
        val,
    })
}

/// One step of a property path below the property itself.
#[derive(Debug, PartialEq, Eq)]
enum Step<'a> {
    /// `.field`
    Field(&'a str),
    /// `[key]` or `["key"]`: the array element with that key.
    Key(&'a str),
}

/// Splits `rest` (what follows a property's own path) into steps; `None`
/// for a path this module cannot read.
fn steps(mut rest: &str) -> Option<Vec<Step<'_>>> {
    let mut out = Vec::new();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            if end == 0 {
                return None;
            }
            out.push(Step::Field(&after[..end]));
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let (key, tail) = if let Some(quoted) = after.strip_prefix('"') {
                let close = quoted.find("\"]")?;
                (&quoted[..close], &quoted[close + 2..])
            } else {
                let close = after.find(']')?;
                (&after[..close], &after[close + 1..])
            };
            out.push(Step::Key(key));
            rest = tail;
        } else {
            return None;
        }
    }
    Some(out)
}

/// The key of an array element: its `key` field, or the reference itself.
fn element_key(node: &Node) -> Option<&str> {
    if node.type_attr.is_some() {
        return Some(node.text.as_str());
    }
    node.child_text("key")
}

/// Where a step leads in `parent`: the index of the child it names.
fn find_step(parent: &Node, step: &Step<'_>, field: Option<&str>) -> Option<usize> {
    match step {
        Step::Field(name) => parent.children.iter().position(|child| child.name == *name),
        Step::Key(key) => parent.children.iter().position(|child| {
            field.map_or(true, |field| child.name == field) && element_key(child) == Some(*key)
        }),
    }
}

/// How a change ended for the value it was applied to.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Applied {
    /// The value is now the one the server holds.
    Done,
    /// The change names a part this module cannot find: read the whole
    /// property again.
    Unresolved,
}

/// Applies `change`, whose path is `property` or a path below it, to the
/// value `value` of `property` (`None`: unset). Applying the same change
/// twice leaves the same value, as the API asks of a copy.
pub(crate) fn apply_change(
    property: &str,
    value: &mut Option<Node>,
    change: &PropertyChange,
) -> Applied {
    let Some(rest) = change.name.strip_prefix(property) else {
        return Applied::Unresolved;
    };
    if rest.is_empty() {
        *value = match change.op {
            ChangeOp::Assign | ChangeOp::Add => change.val.clone(),
            ChangeOp::Remove | ChangeOp::IndirectRemove => None,
        };
        return Applied::Done;
    }
    let (Some(steps), Some(root)) = (steps(rest), value.as_mut()) else {
        return Applied::Unresolved;
    };
    // Inside a data object an array field is its repeated elements; at the
    // top of a property it is the value's children.
    let mut parent = root;
    let mut field: Option<&str> = None;
    for (at, step) in steps.iter().enumerate() {
        let last = at + 1 == steps.len();
        let next_is_key = matches!(steps.get(at + 1), Some(Step::Key(_)));
        if let Step::Field(name) = step {
            if next_is_key {
                // The array of repeated `name` elements, in `parent` itself.
                field = Some(name);
                continue;
            }
        }
        let found = find_step(parent, step, field);
        let element_name = match step {
            Step::Field(name) => (*name).to_owned(),
            Step::Key(_) => field
                .map(str::to_owned)
                .or_else(|| parent.children.first().map(|child| child.name.clone()))
                .unwrap_or_else(|| String::from("val")),
        };
        if last {
            if let Step::Field(name) = step {
                if let Some(done) = assign_array_field(parent, name, change) {
                    return done;
                }
            }
            let replacement = change.val.clone().map(|mut node| {
                node.name = element_name;
                node
            });
            match (change.op, found, replacement) {
                (ChangeOp::Assign | ChangeOp::Add, Some(index), Some(node)) => {
                    parent.children[index] = node;
                }
                (ChangeOp::Assign | ChangeOp::Add, None, Some(node)) => parent.children.push(node),
                (_, Some(index), None) => {
                    parent.children.remove(index);
                }
                (_, None, None) => {}
                (ChangeOp::Remove | ChangeOp::IndirectRemove, Some(index), Some(_)) => {
                    parent.children.remove(index);
                }
                (ChangeOp::Remove | ChangeOp::IndirectRemove, None, Some(_)) => {}
            }
            return Applied::Done;
        }
        let Some(index) = found else {
            return Applied::Unresolved;
        };
        parent = &mut parent.children[index];
        field = None;
    }
    Applied::Unresolved
}

/// A change of an array field inside a data object (its repeated
/// elements), e.g. `guest.net` as a whole: the elements are replaced by
/// those of the value given. `None` when the field is not an array.
fn assign_array_field(parent: &mut Node, name: &str, change: &PropertyChange) -> Option<Applied> {
    let is_array = change.val.as_ref().is_some_and(|val| {
        matches!(&val.xsi_type, Some(crate::vsphere::xml::XsiType::Vim(kind)) if kind.starts_with("ArrayOf"))
    });
    let repeated = parent
        .children
        .iter()
        .filter(|child| child.name == name)
        .count()
        > 1;
    if !is_array && !repeated {
        return None;
    }
    let at = parent
        .children
        .iter()
        .position(|child| child.name == name)
        .unwrap_or(parent.children.len());
    parent.children.retain(|child| child.name != name);
    let at = at.min(parent.children.len());
    if matches!(change.op, ChangeOp::Assign | ChangeOp::Add) {
        if let Some(val) = &change.val {
            let elements = if is_array {
                val.children.clone()
            } else {
                vec![val.clone()]
            };
            for (offset, mut element) in elements.into_iter().enumerate() {
                element.name = name.to_owned();
                parent.children.insert(at + offset, element);
            }
        }
    }
    Some(Applied::Done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vsphere::testing::mangled;
    use crate::vsphere::xml::XsiType;

    const UPDATES: &str = r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema"><soapenv:Body><WaitForUpdatesExResponse xmlns="urn:vim25"><returnval><version>7</version><filterSet><filter type="PropertyFilter">session[1]f1</filter><objectSet><kind>enter</kind><obj type="VirtualMachine">vm-1</obj><changeSet><name>name</name><op>assign</op><val xsi:type="xsd:string">vm01</val></changeSet><changeSet><name>guest.ipAddress</name><op>assign</op></changeSet></objectSet><objectSet><kind>modify</kind><obj type="VirtualMachine">vm-2</obj><changeSet><name>config.hardware.device[4000]</name><op>remove</op></changeSet></objectSet><objectSet><kind>leave</kind><obj type="VirtualMachine">vm-3</obj></objectSet><objectSet><kind>modify</kind><obj type="VirtualMachine">vm-4</obj><missingSet><path>guest.ipAddress</path><fault><fault xsi:type="NoPermission"/></fault></missingSet></objectSet></filterSet><truncated>true</truncated></returnval></WaitForUpdatesExResponse></soapenv:Body></soapenv:Envelope>"#;

    #[test]
    fn an_update_set_reads_its_objects_and_changes() {
        let set = read_update_set(&mut UPDATES.as_bytes()).unwrap().unwrap();
        assert_eq!(set.version, "7");
        assert!(set.truncated);
        let objects = &set.filters[0].objects;
        assert_eq!(set.filters[0].filter.id, "session[1]f1");
        assert_eq!(objects.len(), 4);
        assert_eq!(objects[3].changes[0].name, "guest.ipAddress");
        assert!(objects[3].changes[0].val.is_none());
        assert_eq!(objects[0].kind, ObjectChange::Enter);
        assert_eq!(objects[0].obj, MoRef::new("VirtualMachine", "vm-1"));
        assert_eq!(objects[0].changes[0].name, "name");
        assert_eq!(objects[0].changes[0].val.as_ref().unwrap().text, "vm01");
        assert!(objects[0].changes[1].val.is_none());
        assert_eq!(objects[1].changes[0].op, ChangeOp::Remove);
        assert_eq!(objects[2].kind, ObjectChange::Leave);
    }

    #[test]
    fn no_returnval_is_no_change() {
        let empty = r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><WaitForUpdatesExResponse xmlns="urn:vim25"></WaitForUpdatesExResponse></soapenv:Body></soapenv:Envelope>"#;
        assert!(read_update_set(&mut empty.as_bytes()).unwrap().is_none());
    }

    #[test]
    fn arbitrary_update_sets_never_panic() {
        for input in mangled(UPDATES.as_bytes(), 3000, 0x51ab) {
            let _ = read_update_set(&mut &input[..]);
        }
    }

    fn leaf(name: &str, text: &str) -> Node {
        Node {
            name: name.into(),
            text: text.into(),
            ..Node::default()
        }
    }

    fn device(key: &str, label: &str) -> Node {
        Node {
            name: "VirtualDevice".into(),
            xsi_type: Some(XsiType::Vim("VirtualDisk".into())),
            children: vec![
                leaf("key", key),
                Node {
                    name: "deviceInfo".into(),
                    children: vec![leaf("label", label)],
                    ..Node::default()
                },
            ],
            ..Node::default()
        }
    }

    fn change(name: &str, op: ChangeOp, val: Option<Node>) -> PropertyChange {
        PropertyChange {
            name: name.into(),
            op,
            val,
        }
    }

    #[test]
    fn paths_split_into_fields_and_keys() {
        assert_eq!(
            steps(r#"[4000].deviceInfo.label"#).unwrap(),
            [
                Step::Key("4000"),
                Step::Field("deviceInfo"),
                Step::Field("label")
            ]
        );
        assert_eq!(steps(r#"["vm-1"]"#).unwrap(), [Step::Key("vm-1")]);
        assert!(steps("x").is_none());
        assert!(steps("[4000").is_none());
        assert!(steps(".").is_none());
    }

    #[test]
    fn changes_apply_to_whole_values_and_to_array_elements() {
        let devices = Node {
            name: "val".into(),
            xsi_type: Some(XsiType::Vim("ArrayOfVirtualDevice".into())),
            children: vec![device("4000", "Hard disk 1"), device("4001", "Hard disk 2")],
            ..Node::default()
        };
        let path = "config.hardware.device";
        let mut value = Some(devices);
        // Remove one element, twice: the same outcome.
        for _ in 0..2 {
            let remove = change("config.hardware.device[4000]", ChangeOp::Remove, None);
            assert_eq!(apply_change(path, &mut value, &remove), Applied::Done);
            assert_eq!(value.as_ref().unwrap().children.len(), 1);
        }
        // Add one, twice: one element.
        let mut added = device("4002", "Hard disk 3");
        added.name = "val".into();
        for _ in 0..2 {
            let add = change(
                "config.hardware.device[4002]",
                ChangeOp::Add,
                Some(added.clone()),
            );
            assert_eq!(apply_change(path, &mut value, &add), Applied::Done);
        }
        let children = &value.as_ref().unwrap().children;
        assert_eq!(children.len(), 2);
        assert_eq!(children[1].name, "VirtualDevice");
        // A field of one element.
        let label = change(
            r#"config.hardware.device["4001"].deviceInfo.label"#,
            ChangeOp::Assign,
            Some(leaf("val", "Boot disk")),
        );
        assert_eq!(apply_change(path, &mut value, &label), Applied::Done);
        let first = &value.as_ref().unwrap().children[0];
        assert_eq!(
            first.child("deviceInfo").unwrap().child_text("label"),
            Some("Boot disk")
        );
        // An element that is not there: read the property again.
        let missing = change(
            "config.hardware.device[9].deviceInfo.label",
            ChangeOp::Assign,
            None,
        );
        assert_eq!(
            apply_change(path, &mut value, &missing),
            Applied::Unresolved
        );
        // The whole value, unset.
        let unset = change(path, ChangeOp::Assign, None);
        assert_eq!(apply_change(path, &mut value, &unset), Applied::Done);
        assert!(value.is_none());
    }

    #[test]
    fn repeated_fields_inside_a_data_object_are_an_array() {
        let nic = |key: &str, ip: &str| Node {
            name: "net".into(),
            children: vec![leaf("key", key), leaf("ipAddress", ip)],
            ..Node::default()
        };
        let mut value = Some(Node {
            name: "val".into(),
            xsi_type: Some(XsiType::Vim("GuestInfo".into())),
            children: vec![
                leaf("hostName", "web01"),
                nic("1", "10.0.0.1"),
                nic("2", "10.0.0.2"),
            ],
            ..Node::default()
        });
        let changed = change(
            "guest.net[2].ipAddress",
            ChangeOp::Assign,
            Some(leaf("val", "10.9.9.9")),
        );
        assert_eq!(apply_change("guest", &mut value, &changed), Applied::Done);
        let guest = value.as_ref().unwrap();
        assert_eq!(guest.children[2].child_text("ipAddress"), Some("10.9.9.9"));
        let renamed = change(
            "guest.hostName",
            ChangeOp::Assign,
            Some(leaf("val", "web02")),
        );
        assert_eq!(apply_change("guest", &mut value, &renamed), Applied::Done);
        assert_eq!(
            value.as_ref().unwrap().child_text("hostName"),
            Some("web02")
        );
        // The array field as a whole.
        let nics = Node {
            name: "val".into(),
            xsi_type: Some(XsiType::Vim("ArrayOfGuestNicInfo".into())),
            children: vec![
                nic("1", "10.0.0.1"),
                nic("2", "10.0.0.2"),
                nic("3", "10.0.0.3"),
            ],
            ..Node::default()
        };
        let all = change("guest.net", ChangeOp::Assign, Some(nics));
        assert_eq!(apply_change("guest", &mut value, &all), Applied::Done);
        let names: Vec<_> = value
            .as_ref()
            .unwrap()
            .children
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(names, ["hostName", "net", "net", "net"]);
        let gone = change("guest.net[3]", ChangeOp::Remove, None);
        assert_eq!(apply_change("guest", &mut value, &gone), Applied::Done);
        let gone = change("guest.net[1]", ChangeOp::Remove, None);
        assert_eq!(apply_change("guest", &mut value, &gone), Applied::Done);
        assert_eq!(value.as_ref().unwrap().children.len(), 2);
        // A change of another property does not apply here.
        let other = change("name", ChangeOp::Assign, Some(leaf("val", "x")));
        assert_eq!(
            apply_change("guest", &mut value, &other),
            Applied::Unresolved
        );
    }
}
