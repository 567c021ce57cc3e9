//! Checks across tables, once every file has been read: unique names (each
//! kind of table has names of its own), names in `after`, `semaphores`,
//! `wait_events` and `sets_event` that are defined, and no dependency cycles
//! (which would leave every unit in the cycle waiting forever).

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::errors::Errors;
use crate::loader::Tables;
use crate::named::{first_definitions, Namespace, Parsed, Reference};
use crate::unit::{table_name, ParsedUnit};
use crate::value::key_path;

/// Runs every check across tables. `complete` is false when some file could
/// not be read or parsed; "unknown unit" (semaphore, event) checks are skipped
/// then, as the name may well be defined in that file.
pub(crate) fn check(tables: &Tables, complete: bool, errors: &mut Errors) {
    let units = &tables.units;
    let unit_names = first_definitions(
        units.iter().map(|unit| &unit.definition),
        |first| {
            let first = &units[first].config;
            let kind = table_name(first.kind);
            format!("unit `{}` is already defined as a {kind}", first.name)
        },
        errors,
    );
    let pools = unique(&tables.pools, "pool", errors);
    let semaphores = unique(&tables.semaphores, "semaphore", errors);
    let events = unique(&tables.events, "event", errors);
    let sockets = unique(&tables.sockets, "socket", errors);
    if complete {
        let refs = units
            .iter()
            .flat_map(|unit| &unit.refs)
            .chain(tables.pools.iter().flat_map(|pool| &pool.refs));
        for reference in refs {
            let defined = match reference.namespace {
                Namespace::Unit => &unit_names,
                Namespace::Semaphore => &semaphores,
                Namespace::Event => &events,
                Namespace::Socket => &sockets,
                Namespace::Pool => &pools,
            };
            if !defined.contains_key(reference.name.as_str()) {
                errors.push(&reference.at, &reference.key, unknown(reference));
            }
        }
    }
    check_cycles(units, &unit_names, errors);
}

/// Reports every definition of a name already defined by another table of
/// this kind (`noun`); the first definition of each name, by name.
fn unique<'p, T>(
    parsed: &'p [Parsed<T>],
    noun: &str,
    errors: &mut Errors,
) -> HashMap<&'p str, usize> {
    let definitions = parsed.iter().map(|parsed| &parsed.definition);
    let already = |first: usize| {
        let name = &parsed[first].definition.name;
        format!("{noun} `{name}` is already defined")
    };
    first_definitions(definitions, already, errors)
}

/// "unknown unit `x` (...)", saying how the name could be defined.
fn unknown(reference: &Reference) -> String {
    let name = &reference.name;
    let (noun, hint) = match reference.namespace {
        Namespace::Unit => ("unit", "no service or task has this name".to_string()),
        Namespace::Semaphore => ("semaphore", declare("semaphore", name)),
        Namespace::Event => ("event", declare("event", name)),
        Namespace::Socket => ("socket", declare("socket", name)),
        Namespace::Pool => ("pool", declare("pool", name)),
    };
    format!("unknown {noun} `{name}` ({hint})")
}

/// "declare it with [semaphore.db]".
fn declare(table: &str, name: &str) -> String {
    format!("declare it with [{}]", key_path(table, name))
}

/// The `after` graph over first definitions: for each unit, the units it
/// waits for, with the index in its `refs` of the `after` entry naming each.
fn edges(units: &[ParsedUnit], by_name: &HashMap<&str, usize>) -> Vec<Vec<(usize, usize)>> {
    units
        .iter()
        .map(|unit| {
            unit.refs
                .iter()
                .enumerate()
                .filter(|(_, target)| target.namespace == Namespace::Unit)
                .filter_map(|(entry, target)| Some((*by_name.get(target.name.as_str())?, entry)))
                .collect()
        })
        .collect()
}

#[derive(Clone, Copy, PartialEq)]
enum Mark {
    Unvisited,
    OnPath,
    Done,
}

/// Reports each dependency cycle once, at the `after` entry of the cycle's
/// alphabetically first unit.
fn check_cycles(units: &[ParsedUnit], by_name: &HashMap<&str, usize>, errors: &mut Errors) {
    let graph = edges(units, by_name);
    let mut marks = vec![Mark::Unvisited; units.len()];
    let mut cycles = Vec::new();
    // In read order, so which cycles a tangle reports does not depend on hashing.
    let starts: BTreeSet<usize> = by_name.values().copied().collect();
    for start in starts {
        if marks[start] == Mark::Unvisited {
            find_cycles_from(start, &graph, &mut marks, &mut cycles);
        }
    }
    let mut reported = HashSet::new();
    for cycle in cycles {
        let cycle = rotate_to_first_name(units, cycle);
        if reported.insert(cycle.clone()) {
            report_cycle(units, &graph, &cycle, errors);
        }
    }
}

/// Depth-first search from `start`; every back edge closes a cycle, pushed
/// onto `cycles` as the units along it. Iterative, so a long chain of units
/// cannot overflow the stack.
fn find_cycles_from(
    start: usize,
    graph: &[Vec<(usize, usize)>],
    marks: &mut [Mark],
    cycles: &mut Vec<Vec<usize>>,
) {
    // The current path: (unit, index of the next edge to follow).
    let mut path: Vec<(usize, usize)> = vec![(start, 0)];
    marks[start] = Mark::OnPath;
    while let Some((node, next)) = path.last_mut() {
        let node = *node;
        let Some(&(target, _)) = graph[node].get(*next) else {
            marks[node] = Mark::Done;
            path.pop();
            continue;
        };
        *next += 1;
        match marks[target] {
            Mark::Unvisited => {
                marks[target] = Mark::OnPath;
                path.push((target, 0));
            }
            Mark::OnPath => {
                let from = path
                    .iter()
                    .position(|(on_path, _)| *on_path == target)
                    .unwrap_or(0);
                cycles.push(path[from..].iter().map(|(unit, _)| *unit).collect());
            }
            Mark::Done => {}
        }
    }
}

/// The same cycle found from another unit must look the same.
fn rotate_to_first_name(units: &[ParsedUnit], mut cycle: Vec<usize>) -> Vec<usize> {
    let first = (0..cycle.len())
        .min_by_key(|&at| &units[cycle[at]].config.name)
        .unwrap_or(0);
    cycle.rotate_left(first);
    cycle
}

fn report_cycle(
    units: &[ParsedUnit],
    graph: &[Vec<(usize, usize)>],
    cycle: &[usize],
    errors: &mut Errors,
) {
    let (Some(&head), Some(&second)) = (cycle.first(), cycle.get(1).or(cycle.first())) else {
        return;
    };
    let Some(&(_, entry)) = graph[head].iter().find(|(target, _)| *target == second) else {
        return;
    };
    let names: Vec<&str> = cycle
        .iter()
        .chain(std::iter::once(&head))
        .map(|&index| units[index].config.name.as_str())
        .collect();
    let message = format!(
        "dependency cycle: {} (each waits for the next)",
        names.join(" -> ")
    );
    let entry = &units[head].refs[entry];
    errors.push(&entry.at, &entry.key, message);
}
