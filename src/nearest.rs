//! Which known names a mistyped one is closest to: for "did you mean" hints (config keys,
//! folder names).

/// Levenshtein distance: insertions, deletions and substitutions of characters.
pub fn edits(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let replaced = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = replaced.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

/// Up to `most` of `names` a person typing `wanted` may have meant, closest first:
/// those within a third of its length in edits (case aside), holding it or held in it,
/// or starting with the same word (`Sent Items`, `Sent Messages`).
pub fn closest<'a>(wanted: &str, names: impl IntoIterator<Item = &'a str>, most: usize) -> Vec<&'a str> {
    let want = wanted.to_lowercase();
    let limit = (want.chars().count() / 3).max(1);
    let mut scored: Vec<(usize, &str)> = names
        .into_iter()
        .filter_map(|name| {
            let lower = name.to_lowercase();
            let d = edits(&want, &lower);
            let related = !lower.is_empty() && (lower.contains(&want) || want.contains(&lower))
                || first_word(&lower).is_some_and(|w| first_word(&want) == Some(w));
            (d <= limit || related).then_some((d, name))
        })
        .filter(|&(_, name)| name != wanted)
        .collect();
    scored.sort();
    scored.dedup_by(|a, b| a.1 == b.1);
    scored.into_iter().take(most).map(|(_, name)| name).collect()
}

/// The first word of a name of several, when it is long enough to mean something.
fn first_word(name: &str) -> Option<&str> {
    let word = name.split(|c: char| !c.is_alphanumeric()).next()?;
    (word.chars().count() >= 3 && word.len() < name.len()).then_some(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(edits("kitten", "sitting"), 3);
        assert_eq!(edits("", "abc"), 3);
        assert_eq!(edits("Grüße", "Gruse"), 2);
    }

    #[test]
    fn closest_names() {
        let names = ["INBOX", "Sent", "Sent Messages", "Drafts", "Trash", "Archive/2019", "Junk"];
        assert_eq!(closest("Sent Items", names, 3), ["Sent", "Sent Messages"]);
        assert_eq!(closest("inbox", names, 3), ["INBOX"]);
        assert_eq!(closest("Draft", names, 3), ["Drafts"]);
        assert_eq!(closest("Archive", names, 3), ["Archive/2019"]);
        assert!(closest("Rechnungen", names, 3).is_empty());
        assert_eq!(closest("Trash", names, 3), Vec::<&str>::new(), "not itself");
    }
}
