//! The README's table of AWS requests per piece of work, generated from what
//! `tests/tests/request_counts.rs` measures, never typed.
//!
//! Each measured row is compared with its line in README.md between the
//! `request-counts` markers: a hot-path change that adds or removes a round
//! trip fails the test until the README says so too. To regenerate the rows
//! after such a change, run the test with `REQUEST_COUNTS_WRITE=1`:
//!
//! ```sh
//! REQUEST_COUNTS_WRITE=1 cargo test -p integration-tests --test request_counts
//! ```
//!
//! A new label is appended to the table; an existing one is rewritten in place.

use std::collections::BTreeMap;
use std::sync::Mutex;

const BEGIN: &str = "<!-- request-counts:begin -->";
const END: &str = "<!-- request-counts:end -->";

/// Tests run in parallel in one process: one README edit at a time.
static README: Mutex<()> = Mutex::new(());

/// The table line for `label`: the total AWS requests, the operations with
/// their counts (service prefix dropped), and outbound HTTP calls.
pub fn line(label: &str, counts: &BTreeMap<String, u64>, http: u64) -> String {
    let total: u64 = counts.values().sum();
    let of_which: Vec<String> = counts
        .iter()
        .map(|(op, n)| {
            let op = op.split_once('.').map_or(op.as_str(), |(_, o)| o);
            format!("{op} {n}")
        })
        .collect();
    format!("| {label} | {total} | {} | {http} |", of_which.join(", "))
}

/// Checks (or, with `REQUEST_COUNTS_WRITE=1`, writes) the README's row for
/// `label`. Panics with the expected line when the README differs.
pub fn row(label: &str, counts: &BTreeMap<String, u64>, http: u64) {
    let _one = README.lock().unwrap_or_else(|p| p.into_inner());
    let path = crate::repo_path("README.md");
    let readme = std::fs::read_to_string(&path).expect("README.md is readable");
    let (Some(begin), Some(end)) = (readme.find(BEGIN), readme.find(END)) else {
        panic!("README.md has no {BEGIN} ... {END} block");
    };
    let block = &readme[begin + BEGIN.len()..end];
    let expected = line(label, counts, http);
    let prefix = format!("| {label} |");
    let current = block.lines().find(|l| l.starts_with(&prefix));
    if current == Some(expected.as_str()) {
        return;
    }
    if std::env::var("REQUEST_COUNTS_WRITE").as_deref() == Ok("1") {
        let mut lines: Vec<String> = block.lines().map(str::to_owned).collect();
        match lines.iter().position(|l| l.starts_with(&prefix)) {
            Some(i) => lines[i] = expected,
            None => {
                // After the last row.
                let at = lines
                    .iter()
                    .rposition(|l| !l.trim().is_empty())
                    .map_or(lines.len(), |i| i + 1);
                lines.insert(at, expected);
            }
        }
        let new_block = lines.join("\n") + "\n";
        let updated = format!("{}{BEGIN}{new_block}{}", &readme[..begin], &readme[end..]);
        std::fs::write(&path, updated).expect("README.md is writable");
        return;
    }
    panic!(
        "README.md's request table says\n  {}\nbut the test measured\n  {expected}\n\
         (regenerate: REQUEST_COUNTS_WRITE=1 cargo test -p integration-tests --test request_counts)",
        current.unwrap_or("(no row)")
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_lists_the_operations_without_their_service() {
        let counts: BTreeMap<String, u64> = [("DynamoDB.GetItem", 2), ("SQS.SendMessage", 1)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        assert_eq!(
            line("merge", &counts, 0),
            "| merge | 3 | GetItem 2, SendMessage 1 | 0 |"
        );
    }
}
