//! `herdctl top`: a live view of every instance and pool, busiest first,
//! like top(1) or systemd-cgtop. Each frame is one `status` (with usage);
//! CPU % is the CPU time an instance used between two frames over the wall
//! time between them. On a terminal it redraws in the alternate screen and
//! reads keys (`c`/`m`/`p`/`n` sort by CPU, memory, processes, name; `q` or
//! Ctrl-C quits) and always gives the terminal back as it was; `-b` prints
//! plain frames to stdout instead, `-n N` frames in all, `-d SECONDS` apart.

use super::{Context, Outcome};
use crate::cli::TopArgs;
use crate::error::Error;
use crate::output::{self, format_bytes, format_duration, Cell, Paint, Table};
use crossterm::event::{self, Event, KeyCode, KeyEvent, KeyModifiers};
use crossterm::{cursor, execute, terminal};
use herd_common::protocol::{Request, StatusReport};
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// What the rows are sorted by, largest first (names: alphabetical).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    Cpu,
    Memory,
    Processes,
    Name,
}

/// One instance's line of a frame.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    name: String,
    state: herd_common::state::State,
    /// Percent of one CPU since the previous frame (`None` on the first).
    cpu_percent: Option<f64>,
    memory: Option<u64>,
    processes: Option<u64>,
    restarts: u32,
    uptime_ms: Option<u64>,
}

/// CPU time per instance at the previous frame, to turn totals into rates.
#[derive(Default)]
struct Previous {
    at: Option<Instant>,
    cpu_usec: HashMap<String, u64>,
}

pub fn exec(ctx: &Context, args: TopArgs) -> Result<Outcome, Error> {
    let delay = Duration::from_secs_f64(args.delay.clamp(0.1, 86_400.0));
    let interactive = !args.batch && std::io::stdout().is_terminal();
    if interactive {
        interactive_loop(ctx, delay, args.iterations)
    } else {
        batch_loop(ctx, delay, args.iterations)
    }
}

fn frame(ctx: &Context, previous: &mut Previous, sort: Sort) -> Result<String, Error> {
    let report: StatusReport = ctx.call(&Request::Status {
        names: vec![],
        usage: true,
    })?;
    let now = Instant::now();
    let rows = rows(&report, previous, now);
    Ok(render(&report, rows, sort, ctx.colour))
}

fn batch_loop(ctx: &Context, delay: Duration, iterations: Option<u64>) -> Result<Outcome, Error> {
    let mut previous = Previous::default();
    let mut shown = 0u64;
    loop {
        let text = frame(ctx, &mut previous, Sort::Cpu)?;
        output::print_text(&text)?;
        shown += 1;
        if iterations.is_some_and(|n| shown >= n) {
            return Ok(Outcome::Success);
        }
        println!();
        std::thread::sleep(delay);
    }
}

/// Raw mode and the alternate screen, undone when dropped (on every return,
/// error or panic unwinding).
struct Screen;

impl Screen {
    fn enter() -> std::io::Result<Screen> {
        terminal::enable_raw_mode()?;
        let screen = Screen;
        execute!(
            std::io::stdout(),
            terminal::EnterAlternateScreen,
            cursor::Hide
        )?;
        Ok(screen)
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        let _ = execute!(
            std::io::stdout(),
            cursor::Show,
            terminal::LeaveAlternateScreen
        );
        let _ = terminal::disable_raw_mode();
    }
}

fn interactive_loop(
    ctx: &Context,
    delay: Duration,
    iterations: Option<u64>,
) -> Result<Outcome, Error> {
    let _screen = Screen::enter()?;
    let mut previous = Previous::default();
    let mut sort = Sort::Cpu;
    let mut shown = 0u64;
    loop {
        let text = frame(ctx, &mut previous, sort)?;
        let mut out = std::io::stdout().lock();
        execute!(
            out,
            cursor::MoveTo(0, 0),
            terminal::Clear(terminal::ClearType::All)
        )?;
        // Raw mode: each line needs its carriage return.
        let help = "keys: c cpu, m memory, p processes, n name, q quit";
        write!(out, "{}\r\n", text.replace('\n', "\r\n") + help)?;
        out.flush()?;
        shown += 1;
        if iterations.is_some_and(|n| shown >= n) {
            return Ok(Outcome::Success);
        }
        let until = Instant::now() + delay;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() || !event::poll(left)? {
                break;
            }
            if let Event::Key(key) = event::read()? {
                match key_action(key) {
                    KeyAction::Quit => return Ok(Outcome::Success),
                    KeyAction::Sort(by) => {
                        sort = by;
                        break;
                    }
                    KeyAction::Redraw => break,
                    KeyAction::Nothing => {}
                }
            }
        }
    }
}

enum KeyAction {
    Quit,
    Sort(Sort),
    Redraw,
    Nothing,
}

fn key_action(key: KeyEvent) -> KeyAction {
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    match key.code {
        KeyCode::Char('c') if ctrl => KeyAction::Quit,
        KeyCode::Char('q') | KeyCode::Esc => KeyAction::Quit,
        KeyCode::Char('c') => KeyAction::Sort(Sort::Cpu),
        KeyCode::Char('m') => KeyAction::Sort(Sort::Memory),
        KeyCode::Char('p') => KeyAction::Sort(Sort::Processes),
        KeyCode::Char('n') => KeyAction::Sort(Sort::Name),
        KeyCode::Char(' ') => KeyAction::Redraw,
        _ => KeyAction::Nothing,
    }
}

/// Every instance with its CPU rate since the previous frame.
fn rows(report: &StatusReport, previous: &mut Previous, now: Instant) -> Vec<Row> {
    let elapsed_usec = previous
        .at
        .map(|at| now.saturating_duration_since(at).as_micros() as f64);
    let mut cpu_now = HashMap::new();
    let rows = report
        .units
        .iter()
        .flat_map(|unit| &unit.instances)
        .map(|instance| {
            let cpu = instance.usage.cpu_usec;
            if let Some(cpu) = cpu {
                cpu_now.insert(instance.name.clone(), cpu);
            }
            let before = previous.cpu_usec.get(&instance.name).copied();
            let cpu_percent = match (cpu, before, elapsed_usec) {
                (Some(now), Some(before), Some(elapsed)) if elapsed > 0.0 => {
                    Some(now.saturating_sub(before) as f64 * 100.0 / elapsed)
                }
                (Some(_), _, Some(_)) => Some(0.0),
                _ => None,
            };
            Row {
                name: instance.name.clone(),
                state: instance.state,
                cpu_percent,
                memory: instance.usage.memory_bytes,
                processes: instance.usage.processes,
                restarts: instance.restarts,
                uptime_ms: instance.uptime_ms,
            }
        })
        .collect();
    previous.at = Some(now);
    previous.cpu_usec = cpu_now;
    rows
}

fn sort_rows(rows: &mut [Row], sort: Sort) {
    let key = |row: &Row| -> f64 {
        match sort {
            Sort::Cpu => row.cpu_percent.unwrap_or(-1.0),
            Sort::Memory => row.memory.map_or(-1.0, |m| m as f64),
            Sort::Processes => row.processes.map_or(-1.0, |p| p as f64),
            Sort::Name => 0.0,
        }
    };
    rows.sort_by(|a, b| key(b).total_cmp(&key(a)).then_with(|| a.name.cmp(&b.name)));
}

/// A frame: a summary line, the instances table, and the pools table.
fn render(report: &StatusReport, mut rows: Vec<Row>, sort: Sort, colour: bool) -> String {
    sort_rows(&mut rows, sort);
    let running = rows
        .iter()
        .filter(|row| row.state == herd_common::state::State::Running)
        .count();
    let memory: u64 = rows.iter().filter_map(|row| row.memory).sum();
    let rates: Vec<f64> = rows.iter().filter_map(|row| row.cpu_percent).collect();
    let cpu = if rates.is_empty() {
        "-".to_string() // the first frame has no rate yet
    } else {
        format!("{:.1}%", rates.iter().sum::<f64>())
    };
    let mut out = format!(
        "herd - {} instances, {running} running; CPU {cpu}, memory {}; sorted by {}\n\n",
        rows.len(),
        format_bytes(memory),
        match sort {
            Sort::Cpu => "CPU",
            Sort::Memory => "memory",
            Sort::Processes => "processes",
            Sort::Name => "name",
        }
    );
    let mut table = Table::new(&[
        "INSTANCE", "STATE", "CPU%", "MEMORY", "PROCS", "RESTARTS", "UPTIME",
    ]);
    let dash = || "-".to_string();
    for row in &rows {
        table.push(vec![
            Cell::new(&row.name),
            Cell::painted(row.state.as_str(), Paint::for_state(row.state)),
            Cell::new(row.cpu_percent.map_or_else(dash, |p| format!("{p:.1}"))),
            Cell::new(row.memory.map_or_else(dash, format_bytes)),
            Cell::new(row.processes.map_or_else(dash, |p| p.to_string())),
            Cell::new(row.restarts.to_string()),
            Cell::new(row.uptime_ms.map_or_else(dash, format_duration)),
        ]);
    }
    out.push_str(&table.render(colour));
    if !report.pools.is_empty() {
        let mut pools = Table::new(&["POOL", "SIZE", "RUNNING", "QUEUED", "DONE", "FAILED"]);
        for pool in &report.pools {
            pools.push(vec![
                Cell::new(&pool.name),
                Cell::new(pool.size.to_string()),
                Cell::new(pool.running.to_string()),
                Cell::new(pool.queued.to_string()),
                Cell::new(pool.tally.completed.to_string()),
                Cell::new(pool.tally.failed.to_string()),
            ]);
        }
        out.push('\n');
        out.push_str(&pools.render(colour));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use herd_common::protocol::{InstanceStatus, UnitKind, UnitStatus, Usage};
    use herd_common::state::State;

    fn report(cpu: [u64; 2]) -> StatusReport {
        let instance = |name: &str, cpu_usec: u64, memory: u64| InstanceStatus {
            name: name.into(),
            state: State::Running,
            pid: Some(1),
            uptime_ms: Some(1000),
            restarts: 0,
            last_exit: None,
            reason: None,
            notify_status: None,
            adopted: false,
            log_error: None,
            health: None,
            usage: Usage {
                memory_bytes: Some(memory),
                memory_peak_bytes: None,
                cpu_usec: Some(cpu_usec),
                processes: Some(1),
            },
        };
        StatusReport {
            units: vec![UnitStatus {
                name: "web".into(),
                kind: UnitKind::Service,
                state: State::Running,
                command: vec!["app".into()],
                instances: vec![
                    instance("web@0", cpu[0], 10 << 20),
                    instance("web@1", cpu[1], 1 << 20),
                ],
                hook_error: None,
                timer: None,
            }],
            pools: vec![],
            sockets: vec![],
        }
    }

    #[test]
    fn cpu_percent_is_the_rate_between_frames_and_sorts_the_rows() {
        let mut previous = Previous::default();
        let start = Instant::now();
        let first = rows(&report([0, 0]), &mut previous, start);
        assert!(first.iter().all(|row| row.cpu_percent.is_none()));
        // web@1 used half a second of CPU in one second: 50 %.
        let later = start + Duration::from_secs(1);
        let mut second = rows(&report([100_000, 500_000]), &mut previous, later);
        assert_eq!(second[1].cpu_percent, Some(50.0));
        sort_rows(&mut second, Sort::Cpu);
        assert_eq!(second[0].name, "web@1");
        sort_rows(&mut second, Sort::Memory);
        assert_eq!(second[0].name, "web@0");
    }

    #[test]
    fn frame_names_every_instance() {
        let mut previous = Previous::default();
        let report = report([0, 0]);
        let text = render(
            &report,
            rows(&report, &mut previous, Instant::now()),
            Sort::Cpu,
            false,
        );
        assert!(text.contains("web@0") && text.contains("web@1"), "{text}");
        assert!(text.lines().any(|l| l.starts_with("INSTANCE")), "{text}");
    }
}
