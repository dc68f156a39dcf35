//! Every document the client sends is valid against the committed SDL
//! (docs/schema.graphql, which the server's own test keeps identical to the schema it
//! serves), carries the name its operation declares, and declares exactly the variables its
//! `Variables` type sends: a renamed field, argument or variable fails here, not in
//! production. The check is written against async-graphql's parser (already in the tree):
//! field existence, selections on objects and none on leaves, argument names, required
//! arguments, variables declared and used, and each variable's type against the argument it
//! feeds.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use async_graphql_parser::types::{
    BaseType, DocumentOperations, ExecutableDocument, FieldDefinition, InputValueDefinition,
    OperationType, Selection, SelectionSet, Type, TypeKind, TypeSystemDefinition,
};
use async_graphql_parser::{parse_query, parse_schema};
use async_graphql_value::Value;

/// The schema's types: per object or interface, its fields; the scalars and enums are leaves.
struct Sdl {
    fields: HashMap<String, Vec<FieldDefinition>>,
    leaves: BTreeSet<String>,
}

impl Sdl {
    fn load() -> Sdl {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/schema.graphql");
        let text = std::fs::read_to_string(&path).expect("docs/schema.graphql");
        let doc = parse_schema(&text).expect("the SDL parses");
        let mut sdl = Sdl {
            fields: HashMap::new(),
            leaves: ["String", "Int", "Float", "Boolean", "ID"]
                .map(String::from)
                .into(),
        };
        for def in doc.definitions {
            let TypeSystemDefinition::Type(t) = def else {
                continue;
            };
            let name = t.node.name.node.to_string();
            match t.node.kind {
                TypeKind::Object(o) => {
                    let fields = o.fields.into_iter().map(|f| f.node).collect();
                    sdl.fields.insert(name, fields);
                }
                TypeKind::Interface(i) => {
                    let fields = i.fields.into_iter().map(|f| f.node).collect();
                    sdl.fields.insert(name, fields);
                }
                TypeKind::Scalar | TypeKind::Enum(_) => {
                    sdl.leaves.insert(name);
                }
                TypeKind::Union(_) | TypeKind::InputObject(_) => {}
            }
        }
        sdl
    }

    /// Problems of one document; empty when it is valid.
    fn check(&self, name: &str, text: &str) -> Result<BTreeSet<String>, Vec<String>> {
        let doc: ExecutableDocument = parse_query(text).map_err(|e| vec![e.to_string()])?;
        let mut problems = Vec::new();
        if !doc.fragments.is_empty() {
            problems.push("fragments are not used by the client".to_owned());
        }
        let operation = match &doc.operations {
            DocumentOperations::Multiple(ops) if ops.len() == 1 => ops.get(name),
            _ => None,
        };
        let Some(operation) = operation else {
            return Err(vec![format!(
                "the document must hold one operation named {name}"
            )]);
        };
        let root = match operation.node.ty {
            OperationType::Query => "Query",
            OperationType::Mutation => "Mutation",
            OperationType::Subscription => "Subscription",
        };
        let declared: HashMap<String, Type> = operation
            .node
            .variable_definitions
            .iter()
            .map(|v| (v.node.name.node.to_string(), v.node.var_type.node.clone()))
            .collect();
        let mut used = BTreeSet::new();
        self.selection(
            root,
            &operation.node.selection_set.node,
            &declared,
            &mut used,
            &mut problems,
        );
        for variable in declared.keys() {
            if !used.contains(variable) {
                problems.push(format!("${variable} is declared but not used"));
            }
        }
        if problems.is_empty() {
            Ok(declared.into_keys().collect())
        } else {
            Err(problems)
        }
    }

    fn selection(
        &self,
        on: &str,
        set: &SelectionSet,
        declared: &HashMap<String, Type>,
        used: &mut BTreeSet<String>,
        problems: &mut Vec<String>,
    ) {
        let Some(fields) = self.fields.get(on) else {
            problems.push(format!("`{on}` has no fields to select"));
            return;
        };
        for item in &set.items {
            let Selection::Field(field) = &item.node else {
                problems.push(format!("only plain fields are used, in `{on}`"));
                continue;
            };
            let field = &field.node;
            let name = field.name.node.as_str();
            if name == "__typename" {
                continue;
            }
            let Some(def) = fields.iter().find(|f| f.name.node == name) else {
                problems.push(format!("`{on}` has no field `{name}`"));
                continue;
            };
            self.arguments(on, def, &field.arguments, declared, used, problems);
            let target = named(&def.ty.node);
            let leaf = self.leaves.contains(target);
            match (leaf, field.selection_set.node.items.is_empty()) {
                (true, false) => problems.push(format!("`{on}.{name}` is a leaf: no selection")),
                (false, true) => problems.push(format!("`{on}.{name}` needs a selection")),
                (false, false) => {
                    self.selection(target, &field.selection_set.node, declared, used, problems)
                }
                (true, true) => {}
            }
        }
    }

    fn arguments(
        &self,
        on: &str,
        def: &FieldDefinition,
        given: &[(
            async_graphql_parser::Positioned<async_graphql_value::Name>,
            async_graphql_parser::Positioned<Value>,
        )],
        declared: &HashMap<String, Type>,
        used: &mut BTreeSet<String>,
        problems: &mut Vec<String>,
    ) {
        let field = &def.name.node;
        let params: Vec<&InputValueDefinition> = def.arguments.iter().map(|a| &a.node).collect();
        for (name, value) in given {
            let Some(param) = params.iter().find(|p| p.name.node == name.node) else {
                problems.push(format!("`{on}.{field}` has no argument `{}`", name.node));
                continue;
            };
            if let Value::Variable(variable) = &value.node {
                match declared.get(variable.as_str()) {
                    None => problems.push(format!("${variable} is used but not declared")),
                    Some(ty) if !fits(ty, &param.ty.node) => problems.push(format!(
                        "${variable}: {ty} cannot feed `{field}({}: {})`",
                        name.node, param.ty.node
                    )),
                    Some(_) => {}
                }
            }
            variables_in(&value.node, used);
        }
        for param in params {
            let required = !param.ty.node.nullable && param.default_value.is_none();
            if required && !given.iter().any(|(n, _)| n.node == param.name.node) {
                problems.push(format!(
                    "`{on}.{field}` needs its argument `{}`",
                    param.name.node
                ));
            }
        }
    }
}

fn named(ty: &Type) -> &str {
    match &ty.base {
        BaseType::Named(name) => name.as_str(),
        BaseType::List(inner) => named(inner),
    }
}

/// A variable of type `var` may feed an argument of type `arg`: the same type, where the
/// variable may be stricter (non-null) than the argument.
fn fits(var: &Type, arg: &Type) -> bool {
    if !arg.nullable && var.nullable {
        return false;
    }
    match (&var.base, &arg.base) {
        (BaseType::Named(a), BaseType::Named(b)) => a == b,
        (BaseType::List(a), BaseType::List(b)) => fits(a, b),
        _ => false,
    }
}

fn variables_in(value: &Value, used: &mut BTreeSet<String>) {
    match value {
        Value::Variable(name) => {
            used.insert(name.to_string());
        }
        Value::List(items) => items.iter().for_each(|v| variables_in(v, used)),
        Value::Object(map) => map.values().for_each(|v| variables_in(v, used)),
        _ => {}
    }
}

#[test]
fn every_document_is_valid_against_the_sdl() {
    let sdl = Sdl::load();
    let documents = styrmin_client::ops::documents();
    assert!(documents.len() >= 10, "the operations are listed");
    let mut names = BTreeSet::new();
    let mut failures = Vec::new();
    for doc in documents {
        assert!(names.insert(doc.name), "{} is declared twice", doc.name);
        match sdl.check(doc.name, doc.text) {
            Err(problems) => failures.push(format!("{}: {}", doc.name, problems.join("; "))),
            Ok(declared) => {
                let sent: BTreeSet<String> = (doc.variables)().into_iter().collect();
                if declared != sent {
                    failures.push(format!(
                        "{}: the document declares {declared:?} but its variables type sends {sent:?}",
                        doc.name
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The check is not vacuous: each kind of mistake it looks for is caught.
#[test]
fn wrong_documents_are_caught() {
    let sdl = Sdl::load();
    for (wrong, expected) in [
        (
            "query Q { me { name favouriteColour } }",
            "no field `favouriteColour`",
        ),
        ("query Q { me }", "needs a selection"),
        ("query Q { me { name { x } } }", "is a leaf"),
        (
            "mutation Q($id: ID!) { heartbeatFlowRun(id: $id, attemptt: 1) { id } }",
            "no argument `attemptt`",
        ),
        (
            "mutation Q($id: ID!) { heartbeatFlowRun(id: $id) { id } }",
            "needs its argument `attempt`",
        ),
        (
            "mutation Q($id: ID, $a: Int!) { heartbeatFlowRun(id: $id, attempt: $a) { id } }",
            "cannot feed",
        ),
        (
            "mutation Q($id: ID!, $a: Int!, $x: Int) { heartbeatFlowRun(id: $id, attempt: $a) { id } }",
            "declared but not used",
        ),
        ("query Other { me { name } }", "one operation named Q"),
    ] {
        let problems = sdl.check("Q", wrong).expect_err(wrong).join("; ");
        assert!(problems.contains(expected), "{wrong}: {problems}");
    }
}
