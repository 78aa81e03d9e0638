//! The objects in memory: per managed type, the objects of its container
//! view in the view's order, the mirrored properties of each as the server
//! sent them (raw `<val>` elements, so that an answer from memory is
//! converted by the same code as one from vCenter), and the index from key
//! property (a name, a datastore's URL) to object.

use crate::vsphere::property::ObjectContent;
use crate::vsphere::soap::MoRef;
use crate::vsphere::updates::{self, Applied, ObjectChange, ObjectUpdate, PropertyChange};
use crate::vsphere::xml::{Node, XsiType};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A property value as held. Most are leaves (a number, a string, an
/// enum, a reference), kept in a quarter of an element's size with their
/// type names shared; the others as the element tree.
#[derive(Debug, Clone)]
enum Stored {
    Leaf {
        /// The `xsi:type`: whether a schema type, and its name.
        xsi_type: Option<(bool, Arc<str>)>,
        /// The `type` attribute (a reference's managed type).
        type_attr: Option<Arc<str>>,
        text: Box<str>,
    },
    Tree(Box<Node>),
}

impl Stored {
    /// The value element again (its name is not part of it).
    fn to_node(&self) -> Node {
        match self {
            Stored::Leaf {
                xsi_type,
                type_attr,
                text,
            } => Node {
                name: String::new(),
                xsi_type: xsi_type.as_ref().map(|(schema, name)| {
                    if *schema {
                        XsiType::Schema(name.to_string())
                    } else {
                        XsiType::Vim(name.to_string())
                    }
                }),
                type_attr: type_attr.as_deref().map(str::to_owned),
                text: text.to_string(),
                children: Vec::new(),
            },
            Stored::Tree(node) => (**node).clone(),
        }
    }

    /// The text of a leaf.
    fn leaf_text(&self) -> Option<&str> {
        match self {
            Stored::Leaf { text, .. } => Some(text),
            Stored::Tree(_) => None,
        }
    }
}

/// One copy of each path and type name for all objects of a type.
#[derive(Debug, Default)]
struct Names(HashMap<String, Arc<str>>);

impl Names {
    fn get(&mut self, name: &str) -> Arc<str> {
        if let Some(shared) = self.0.get(name) {
            return shared.clone();
        }
        let shared: Arc<str> = Arc::from(name);
        self.0.insert(name.to_owned(), shared.clone());
        shared
    }

    /// `node` as held.
    fn store(&mut self, mut node: Node) -> Stored {
        if !node.children.is_empty() {
            node.name = String::new();
            return Stored::Tree(Box::new(node));
        }
        Stored::Leaf {
            xsi_type: node.xsi_type.map(|kind| match kind {
                XsiType::Schema(name) => (true, self.get(&name)),
                XsiType::Vim(name) => (false, self.get(&name)),
            }),
            type_attr: node.type_attr.map(|kind| self.get(&kind)),
            text: node.text.into_boxed_str(),
        }
    }
}

/// One object and its mirrored properties.
#[derive(Debug)]
struct Object {
    obj: MoRef,
    /// Set properties only: an unset one is absent, as in an answer. The
    /// path is shared by every object (see [`Names`]).
    props: Vec<(Arc<str>, Stored)>,
    /// Its properties came (an enter, or a read): a member the view names
    /// before that is not answered from memory.
    entered: bool,
}

/// Everything mirrored of one managed type.
#[derive(Debug, Default)]
pub(crate) struct KindStore {
    /// The properties whose current values are all in memory, with when
    /// a request last read each (milliseconds after the mirror's start):
    /// written by readers under the shared lock, collected by the follower.
    ready: HashMap<String, AtomicU64>,
    /// The view's members, in its order (ids).
    order: Vec<String>,
    objects: HashMap<String, Object>,
    /// Key property value to the first object in view order with it (its id).
    index: HashMap<String, String>,
    /// The key property whose index this is, and whether it is current.
    index_key: Option<&'static str>,
    index_stale: bool,
    /// One copy of each path's and type's name for all objects.
    names: Names,
}

impl KindStore {
    pub fn objects(&self) -> usize {
        self.objects.len()
    }

    /// How many property values are held.
    pub fn values(&self) -> usize {
        self.objects.values().map(|object| object.props.len()).sum()
    }

    /// Whether every value of `path` is in memory.
    pub fn is_ready(&self, path: &str) -> bool {
        self.ready.contains_key(path)
    }

    /// `path`'s values are all in memory from now on (read at `now_ms`).
    pub fn mark_ready(&mut self, path: &str, now_ms: u64) {
        self.ready
            .entry(path.to_owned())
            .or_insert_with(|| AtomicU64::new(now_ms));
    }

    /// The ready paths.
    pub fn ready_paths(&self) -> Vec<String> {
        self.ready.keys().cloned().collect()
    }

    /// Notes that `paths` were read at `now_ms`; coarse (a tenth of a
    /// second), so that most reads write nothing.
    pub fn touch(&self, paths: &[&str], now_ms: u64) {
        for path in paths {
            if let Some(at) = self.ready.get(*path) {
                if now_ms.saturating_sub(at.load(Ordering::Relaxed)) > 100 {
                    at.fetch_max(now_ms, Ordering::Relaxed);
                }
            }
        }
    }

    /// When each ready path was last read.
    pub fn touched(&self) -> impl Iterator<Item = (&String, u64)> {
        self.ready
            .iter()
            .map(|(path, at)| (path, at.load(Ordering::Relaxed)))
    }

    /// Forgets property `path` of every object.
    pub fn drop_path(&mut self, path: &str) {
        self.ready.remove(path);
        for object in self.objects.values_mut() {
            object.props.retain(|(name, _)| &**name != path);
        }
    }

    /// Applies the changes to the view itself (its `view` property).
    fn apply_view(&mut self, update: &ObjectUpdate) -> Applied {
        let mut outcome = Applied::Done;
        for change in &update.changes {
            let mut value = Some(self.view_node());
            if updates::apply_change("view", &mut value, change) == Applied::Unresolved {
                outcome = Applied::Unresolved;
                continue;
            }
            self.set_order(value.as_ref());
        }
        outcome
    }

    fn view_node(&self) -> Node {
        Node {
            name: "val".into(),
            children: self
                .order
                .iter()
                .filter_map(|id| self.objects.get(id))
                .map(|object| {
                    let mut reference = Node {
                        name: "ManagedObjectReference".into(),
                        type_attr: Some(object.obj.kind.clone()),
                        text: object.obj.id.clone(),
                        ..Node::default()
                    };
                    reference.name.shrink_to_fit();
                    reference
                })
                .collect(),
            ..Node::default()
        }
    }

    /// The view's members are those of `view` (an array of references);
    /// objects that left it are forgotten, new ones are known by reference
    /// until their properties come.
    fn set_order(&mut self, view: Option<&Node>) {
        let members: Vec<MoRef> = view
            .map(|node| node.children.iter().filter_map(MoRef::from_node).collect())
            .unwrap_or_default();
        let mut seen = HashSet::with_capacity(members.len());
        self.order = Vec::with_capacity(members.len());
        for member in members {
            if seen.insert(member.id.clone()) {
                self.order.push(member.id.clone());
                self.objects.entry(member.id.clone()).or_insert(Object {
                    obj: member,
                    props: Vec::new(),
                    entered: false,
                });
            }
        }
        self.objects.retain(|id, _| seen.contains(id));
        self.index_stale = true;
    }

    /// Applies one object's update; `paths` are the mirrored properties
    /// (an enter sets all of them).
    fn apply_object(&mut self, update: &ObjectUpdate, paths: &[String]) -> Applied {
        match update.kind {
            ObjectChange::Leave => {
                if self.objects.remove(&update.obj.id).is_some() {
                    self.order.retain(|id| id != &update.obj.id);
                    self.index_stale = true;
                }
                Applied::Done
            }
            ObjectChange::Modify if !self.objects.contains_key(&update.obj.id) => {
                // A change of an object not known (after its leave, or
                // before its enter): only a read can tell what it is.
                Applied::Unresolved
            }
            ObjectChange::Enter | ObjectChange::Modify => {
                if !self.objects.contains_key(&update.obj.id) {
                    // Known before the view says so: last until it does.
                    self.order.push(update.obj.id.clone());
                    self.index_stale = true;
                }
                // Which change applies to which mirrored path: its own, one
                // below it (a part of the value), or one above it (then the
                // path's value is a part of the change's, which only a read
                // tells exactly, unless the path has a change of its own).
                let exact: HashSet<&str> = update
                    .changes
                    .iter()
                    .map(|change| change.name.as_str())
                    .collect();
                let mut work: Vec<(Arc<str>, &PropertyChange)> = Vec::new();
                let mut outcome = Applied::Done;
                for change in &update.changes {
                    for path in paths {
                        if change.name == *path || descends(&change.name, path) {
                            work.push((self.names.get(path), change));
                        } else if descends(path, &change.name) && !exact.contains(path.as_str()) {
                            outcome = Applied::Unresolved;
                        }
                    }
                }
                let index_key = self.index_key;
                let names = &mut self.names;
                let object = self
                    .objects
                    .entry(update.obj.id.clone())
                    .or_insert_with(|| Object {
                        obj: update.obj.clone(),
                        props: Vec::new(),
                        entered: false,
                    });
                if update.kind == ObjectChange::Enter {
                    object.props.clear();
                    object.props.reserve_exact(paths.len());
                    object.entered = true;
                }
                let mut key_changed = false;
                for (path, change) in work {
                    if apply_to(object, names, &path, change) == Applied::Unresolved {
                        outcome = Applied::Unresolved;
                    }
                    key_changed |= Some(&*path) == index_key;
                }
                if !object.entered {
                    outcome = Applied::Unresolved;
                }
                if key_changed {
                    self.index_stale = true;
                }
                outcome
            }
        }
    }

    /// The members are the objects of a read of the whole view, in its
    /// order.
    pub fn set_members(&mut self, contents: &[ObjectContent]) {
        let mut seen = HashSet::with_capacity(contents.len());
        self.order = Vec::with_capacity(contents.len());
        for content in contents {
            if seen.insert(content.obj.id.clone()) {
                self.order.push(content.obj.id.clone());
                self.objects
                    .entry(content.obj.id.clone())
                    .or_insert_with(|| Object {
                        obj: content.obj.clone(),
                        props: Vec::new(),
                        entered: false,
                    });
            }
        }
        self.objects.retain(|id, _| seen.contains(id));
        self.index_stale = true;
    }

    /// Sets `paths` of a member from a read (not an update): `content` is
    /// the object as the server returned it (a property it left out is
    /// unset). Objects that are not members (not in the view) are left out.
    pub fn set_read(&mut self, content: ObjectContent, paths: &[&str]) {
        if !self.objects.contains_key(&content.obj.id) {
            return;
        }
        let interned: Vec<(Arc<str>, Stored)> = content
            .props
            .into_iter()
            .filter(|(name, _)| paths.contains(&name.as_str()))
            .map(|(name, value)| (self.names.get(&name), self.names.store(value)))
            .collect();
        let Some(object) = self.objects.get_mut(&content.obj.id) else {
            return;
        };
        object.props.retain(|(name, _)| !paths.contains(&&**name));
        object.props.extend(interned);
        object.props.shrink_to_fit();
        object.entered = true;
        self.index_stale = true;
    }

    /// Members whose properties have not come.
    pub fn not_entered(&self) -> Vec<MoRef> {
        self.objects
            .values()
            .filter(|object| !object.entered)
            .map(|object| object.obj.clone())
            .collect()
    }

    /// The objects in view order with `paths` (each once, in the order
    /// asked), or `None` when one of them is not fully known.
    pub fn all(&self, paths: &[&str]) -> Option<Vec<ObjectContent>> {
        self.order
            .iter()
            .map(|id| {
                self.objects
                    .get(id)
                    .filter(|object| object.entered)
                    .map(|object| content(object, paths))
            })
            .collect()
    }

    /// The objects `references` (each once, in their order) with `paths`;
    /// `None` when one is not in memory.
    pub fn some(&self, references: &[MoRef], paths: &[&str]) -> Option<Vec<ObjectContent>> {
        let mut seen = HashSet::new();
        let mut out = Vec::with_capacity(references.len());
        for reference in references {
            if !seen.insert(&reference.id) {
                continue;
            }
            let object = self.objects.get(&reference.id)?;
            if object.obj.kind != reference.kind || !object.entered {
                return None;
            }
            out.push(content(object, paths));
        }
        Some(out)
    }

    /// The first object (in view order) whose `key` property is `value`.
    pub fn find(&self, key: &'static str, value: &str) -> Option<Option<MoRef>> {
        if self.index_key != Some(key) || self.index_stale {
            return None;
        }
        Some(
            self.index
                .get(value)
                .and_then(|id| self.objects.get(id))
                .map(|object| object.obj.clone()),
        )
    }

    /// Makes the index of `key` current, when it is not.
    pub fn reindex(&mut self, key: &'static str) {
        if self.index_key == Some(key) && !self.index_stale {
            return;
        }
        let mut index = HashMap::with_capacity(self.order.len());
        for id in &self.order {
            let Some(object) = self.objects.get(id) else {
                continue;
            };
            let value = object
                .props
                .iter()
                .find(|(name, _)| &**name == key)
                .and_then(|(_, value)| value.leaf_text());
            if let Some(value) = value {
                index.entry(value.to_owned()).or_insert_with(|| id.clone());
            }
        }
        self.index = index;
        self.index_key = Some(key);
        self.index_stale = false;
    }

    /// Whether `id` is a member (an object in the view).
    #[cfg(test)]
    fn has(&self, id: &str) -> bool {
        self.objects.contains_key(id)
    }
}

/// Whether `path` names a part of `above`'s value (`a.b` or `a[k]` below `a`).
fn descends(path: &str, above: &str) -> bool {
    path.strip_prefix(above)
        .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
}

fn apply_to(
    object: &mut Object,
    names: &mut Names,
    path: &Arc<str>,
    change: &PropertyChange,
) -> Applied {
    let at = object.props.iter().position(|(name, _)| name == path);
    let mut value = at.map(|at| object.props.swap_remove(at).1.to_node());
    let outcome = updates::apply_change(path, &mut value, change);
    if let Some(value) = value {
        object.props.push((path.clone(), names.store(value)));
    }
    outcome
}

fn content(object: &Object, paths: &[&str]) -> ObjectContent {
    let mut props = Vec::with_capacity(paths.len());
    for (at, path) in paths.iter().enumerate() {
        if paths[..at].contains(path) {
            continue;
        }
        if let Some((_, value)) = object.props.iter().find(|(name, _)| &**name == *path) {
            props.push(((*path).to_owned(), value.to_node()));
        }
    }
    ObjectContent {
        obj: object.obj.clone(),
        props,
    }
}

/// What applying a filter's updates left to do.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// Objects whose updates could not be applied: to be read again.
    pub unresolved: Vec<MoRef>,
    /// Updates applied.
    pub applied: u64,
    /// The container view itself left: the filter sees nothing any more.
    pub view_gone: bool,
}

/// Applies one filter's object updates to `store`, the filter mirroring
/// `paths` of objects of its type.
pub(crate) fn apply(store: &mut KindStore, objects: &[ObjectUpdate], paths: &[String]) -> Outcome {
    let mut outcome = Outcome::default();
    for update in objects {
        outcome.applied += 1;
        if update.obj.kind == "ContainerView" {
            match update.kind {
                ObjectChange::Leave => outcome.view_gone = true,
                // A view value this module cannot read leaves the members
                // to their own enters and leaves.
                _ => {
                    let _ = store.apply_view(update);
                }
            }
        } else if store.apply_object(update, paths) == Applied::Unresolved {
            outcome.unresolved.push(update.obj.clone());
        }
    }
    for member in store.not_entered() {
        if !outcome.unresolved.contains(&member) {
            outcome.unresolved.push(member);
        }
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vsphere::updates::ChangeOp;

    fn text(value: &str) -> Node {
        Node {
            name: "val".into(),
            text: value.into(),
            ..Node::default()
        }
    }

    fn vm(id: &str) -> MoRef {
        MoRef::new("VirtualMachine", id)
    }

    fn update(kind: ObjectChange, obj: MoRef, changes: &[(&str, Option<&str>)]) -> ObjectUpdate {
        ObjectUpdate {
            kind,
            obj,
            changes: changes
                .iter()
                .map(|(name, value)| PropertyChange {
                    name: (*name).into(),
                    op: ChangeOp::Assign,
                    val: value.map(text),
                })
                .collect(),
        }
    }

    fn view(ids: &[&str]) -> ObjectUpdate {
        ObjectUpdate {
            kind: ObjectChange::Modify,
            obj: MoRef::new("ContainerView", "session[1]view-1"),
            changes: vec![PropertyChange {
                name: "view".into(),
                op: ChangeOp::Assign,
                val: Some(Node {
                    name: "val".into(),
                    children: ids
                        .iter()
                        .map(|id| Node {
                            name: "ManagedObjectReference".into(),
                            type_attr: Some("VirtualMachine".into()),
                            text: (*id).into(),
                            ..Node::default()
                        })
                        .collect(),
                    ..Node::default()
                }),
            }],
        }
    }

    fn names(store: &KindStore, paths: &[&str]) -> Vec<Vec<(String, String)>> {
        store
            .all(paths)
            .unwrap()
            .into_iter()
            .map(|content| {
                content
                    .props
                    .into_iter()
                    .map(|(name, node)| (name, node.text))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn updates_build_the_objects_in_view_order_and_apply_twice_alike() {
        let paths = vec![String::from("name"), String::from("runtime.powerState")];
        let mut store = KindStore::default();
        let batch = vec![
            update(
                ObjectChange::Enter,
                vm("vm-2"),
                &[
                    ("name", Some("b")),
                    ("runtime.powerState", Some("poweredOn")),
                ],
            ),
            update(
                ObjectChange::Enter,
                vm("vm-1"),
                &[("name", Some("a")), ("runtime.powerState", None)],
            ),
            view(&["vm-1", "vm-2"]),
        ];
        for _ in 0..2 {
            let outcome = apply(&mut store, &batch, &paths);
            assert!(outcome.unresolved.is_empty(), "{outcome:?}");
        }
        let all = &["name", "runtime.powerState", "name"];
        assert_eq!(
            names(&store, all),
            [
                vec![("name".into(), "a".into())],
                vec![
                    ("name".into(), "b".into()),
                    ("runtime.powerState".into(), "poweredOn".into())
                ],
            ]
        );
        store.reindex("name");
        assert_eq!(store.find("name", "b"), Some(Some(vm("vm-2"))));
        // A rename: the index follows, the old name is gone.
        apply(
            &mut store,
            &[update(
                ObjectChange::Modify,
                vm("vm-2"),
                &[("name", Some("c"))],
            )],
            &paths,
        );
        assert_eq!(store.find("name", "c"), None, "stale until reindexed");
        store.reindex("name");
        assert_eq!(store.find("name", "b"), Some(None));
        assert_eq!(store.find("name", "c"), Some(Some(vm("vm-2"))));
        // Leave, and a view without the object: gone either way.
        apply(
            &mut store,
            &[update(ObjectChange::Leave, vm("vm-1"), &[])],
            &paths,
        );
        assert!(!store.has("vm-1"));
        apply(&mut store, &[view(&[])], &paths);
        assert!(!store.has("vm-2"));
        assert_eq!(store.all(&["name"]).unwrap().len(), 0);
    }

    #[test]
    fn a_change_above_a_mirrored_path_reads_the_object_again() {
        let paths = vec![String::from("runtime"), String::from("runtime.powerState")];
        let mut store = KindStore::default();
        // Both in one enter: each takes its own.
        let enter = update(
            ObjectChange::Enter,
            vm("vm-1"),
            &[
                ("runtime", Some("r")),
                ("runtime.powerState", Some("poweredOn")),
            ],
        );
        assert!(apply(&mut store, &[enter], &paths).unresolved.is_empty());
        let both = store
            .some(&[vm("vm-1")], &["runtime", "runtime.powerState"])
            .unwrap();
        assert_eq!(both[0].props.len(), 2);
        // Only the one above changes: the one below is read again.
        let modify = update(ObjectChange::Modify, vm("vm-1"), &[("runtime", Some("r2"))]);
        assert_eq!(
            apply(&mut store, &[modify], &paths).unresolved,
            [vm("vm-1")]
        );
        // A change below a mirrored path applies to it (and to itself).
        let below = update(
            ObjectChange::Modify,
            vm("vm-1"),
            &[("runtime.powerState", Some("poweredOff"))],
        );
        assert!(apply(&mut store, &[below], &paths).unresolved.is_empty());
    }

    #[test]
    fn members_without_properties_are_not_answered() {
        let paths = vec![String::from("name")];
        let mut store = KindStore::default();
        // The view names two, one entered.
        let batch = vec![
            view(&["vm-1", "vm-2"]),
            update(ObjectChange::Enter, vm("vm-1"), &[("name", Some("a"))]),
        ];
        let outcome = apply(&mut store, &batch, &paths);
        assert_eq!(outcome.unresolved, [vm("vm-2")]);
        assert!(store.all(&["name"]).is_none());
        assert!(store.some(&[vm("vm-2")], &["name"]).is_none());
        assert!(store.some(&[vm("vm-1")], &["name"]).is_some());
        // A change of an unknown object: read, not guessed.
        let stray = update(ObjectChange::Modify, vm("vm-9"), &[("name", Some("z"))]);
        assert_eq!(
            apply(&mut store, &[stray], &paths).unresolved.first(),
            Some(&vm("vm-9"))
        );
        assert!(!store.has("vm-9"));
        // The read of vm-2 makes the view whole; a read of a non-member
        // is left out.
        for id in ["vm-2", "vm-9"] {
            store.set_read(
                ObjectContent {
                    obj: vm(id),
                    props: vec![("name".into(), text(id))],
                },
                &["name"],
            );
        }
        assert_eq!(store.all(&["name"]).unwrap().len(), 2);
        assert!(!store.has("vm-9"));
        // The view leaving is reported.
        let gone = ObjectUpdate {
            kind: ObjectChange::Leave,
            obj: MoRef::new("ContainerView", "session[1]view-1"),
            changes: Vec::new(),
        };
        assert!(apply(&mut store, &[gone], &paths).view_gone);
    }

    #[test]
    fn only_known_objects_are_answered() {
        let paths = vec![String::from("name")];
        let mut store = KindStore::default();
        apply(
            &mut store,
            &[update(
                ObjectChange::Enter,
                vm("vm-1"),
                &[("name", Some("a"))],
            )],
            &paths,
        );
        assert!(
            store
                .some(&[vm("vm-1"), vm("vm-1")], &["name"])
                .unwrap()
                .len()
                == 1
        );
        assert!(store.some(&[vm("vm-9")], &["name"]).is_none());
        assert!(store
            .some(&[MoRef::new("HostSystem", "vm-1")], &["name"])
            .is_none());
        assert_eq!(store.values(), 1);
        store.drop_path("name");
        assert_eq!(store.values(), 0);
    }
}
