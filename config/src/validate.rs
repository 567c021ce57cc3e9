//! Checks across units and pools, once every file has been read: unique
//! names, `after` targets that exist, and no dependency cycles (which would
//! leave every unit in the cycle waiting forever).

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::errors::Errors;
use crate::named::first_definitions;
use crate::pool::ParsedPool;
use crate::unit::{table_name, ParsedUnit};

/// Runs every cross-unit check. `complete` is false when some file could not
/// be read or parsed; "unknown unit" checks are skipped then, as the unit may
/// well be defined in that file.
pub(crate) fn check_units(units: &[ParsedUnit], complete: bool, errors: &mut Errors) {
    let definitions = units
        .iter()
        .map(|unit| (unit.config.name.as_str(), &unit.definition));
    let by_name = first_definitions(
        definitions,
        |first| {
            let first = &units[first].config;
            let kind = table_name(first.kind);
            format!("unit `{}` is already defined as a {kind}", first.name)
        },
        errors,
    );
    if complete {
        check_after_targets(units, &by_name, errors);
    }
    check_cycles(units, &by_name, errors);
}

/// Pools have names of their own (a pool may share one with a unit), which
/// must be unique among pools.
pub(crate) fn check_pools(pools: &[ParsedPool], errors: &mut Errors) {
    let definitions = pools
        .iter()
        .map(|pool| (pool.config.name.as_str(), &pool.definition));
    let already = |first: usize| format!("pool `{}` is already defined", pools[first].config.name);
    first_definitions(definitions, already, errors);
}

fn check_after_targets(units: &[ParsedUnit], by_name: &HashMap<&str, usize>, errors: &mut Errors) {
    for unit in units {
        for target in &unit.after {
            if !by_name.contains_key(target.name.as_str()) {
                let message = format!(
                    "unknown unit `{}` (no service or task has this name)",
                    target.name
                );
                errors.push(
                    &target.at,
                    &format!("{}.after", unit.definition.key),
                    message,
                );
            }
        }
    }
}

/// The `after` graph over first definitions: for each unit, the units it
/// waits for, with the index of the `after` entry naming each.
fn edges(units: &[ParsedUnit], by_name: &HashMap<&str, usize>) -> Vec<Vec<(usize, usize)>> {
    units
        .iter()
        .map(|unit| {
            unit.after
                .iter()
                .enumerate()
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
    let unit = &units[head];
    let names: Vec<&str> = cycle
        .iter()
        .chain(std::iter::once(&head))
        .map(|&index| units[index].config.name.as_str())
        .collect();
    let message = format!(
        "dependency cycle: {} (each waits for the next)",
        names.join(" -> ")
    );
    errors.push(
        &unit.after[entry].at,
        &format!("{}.after", unit.definition.key),
        message,
    );
}
