//! Suggestions for a misspelt name (a setting, an option): the closest known name by edit distance.

/// Levenshtein distance between `a` and `b` (insertions, deletions and substitutions of characters,
/// each costing 1), with `-` and `_` taken as the same character.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let norm = |c: char| if c == '-' { '_' } else { c.to_ascii_lowercase() };
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().map(norm).collect(), b.chars().map(norm).collect());
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

/// The known name closest to `name`, when it is close enough to be a likely misspelling: at most
/// `max(1, len/3)` edits away (`hebian_rate` → `hebbian_rate`); ties go to the first in `known`.
pub fn did_you_mean<'a>(name: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).max(1);
    known
        .into_iter()
        .map(|k| (edit_distance(name, k), k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_close_name_is_suggested_and_a_far_one_is_not() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("hebbian-rate", "hebbian_rate"), 0);
        let known = ["hebbian_rate", "active_fraction", "readout_rate"];
        assert_eq!(did_you_mean("hebian_rate", known), Some("hebbian_rate"));
        assert_eq!(did_you_mean("active-fractoin", known), Some("active_fraction"));
        assert_eq!(did_you_mean("epochs", known), None);
    }
}
