//! Recurring causes: which past clusters a new cluster is like, by deterministic text similarity
//! (TF-IDF weighted cosine over stemmed words and word pairs), so that at the end of a
//! retrospective the facilitator can be offered "same cause as …" without any model or network.

use std::collections::{BTreeMap, HashMap};

/// A cluster as the comparison sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CauseText<'a> {
    pub id: &'a str,
    pub title: &'a str,
    pub text: &'a str,
}

/// A past cluster that a new one is like.
#[derive(Debug, Clone, PartialEq)]
pub struct Match {
    pub new: String,
    pub past: String,
    pub score: f64,
}

/// The score from which two clusters are offered as the same cause. A cause that recurs in much
/// the same words scores about 0.45 to 0.75, different causes that share a word (a "release" that
/// was late against a "release" that was blocked) about 0.15 at most, and the same cause in other
/// words 0.2 to 0.3. At 0.3 every offer shares several rare terms with the past cluster, so offers
/// stay few and credible; a cause told in other words may be missed, which is the price of lexical
/// similarity.
pub const THRESHOLD: f64 = 0.3;

/// The characters of one cluster (title first, then its notes) that are considered at most.
const MAX_CHARS: usize = 4_000;

/// Words too common to say anything about a cause (words shorter than 3 characters are dropped
/// anyway). Sorted, for the binary search.
const STOP_WORDS: &[&str] = &[
    "about", "above", "after", "again", "against", "all", "also", "and", "any", "are", "because", "been", "before",
    "being", "below", "between", "both", "but", "can", "could", "did", "does", "doing", "down", "during", "each",
    "few", "for", "from", "further", "had", "has", "have", "having", "her", "here", "hers", "him", "his", "how",
    "into", "its", "just", "more", "most", "nor", "not", "now", "off", "once", "only", "other", "our", "ours", "out",
    "over", "own", "same", "she", "should", "some", "such", "than", "that", "the", "their", "them", "then", "there",
    "these", "they", "this", "those", "through", "too", "under", "until", "very", "was", "were", "what", "when",
    "where", "which", "while", "who", "whom", "why", "will", "with", "would", "you", "your",
];

/// Normalised terms of a text: lowercase, split on non-alphanumerics, stop words dropped, light
/// English stemming (common suffixes stripped, keeping stems of at least 3 characters), tokens
/// shorter than 3 characters dropped, plus word bigrams (`"a b"`) of consecutive kept stems.
pub fn terms(text: &str) -> Vec<String> {
    let stems: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .map(str::to_lowercase)
        .filter(|word| word.chars().count() >= 3 && STOP_WORDS.binary_search(&word.as_str()).is_err())
        .map(|word| stem(&word))
        .collect();
    let bigrams: Vec<String> = stems.windows(2).map(|pair| pair.join(" ")).collect();
    stems.into_iter().chain(bigrams).collect()
}

/// Strips a plural, then one inflectional or derivational suffix, then evens out the spelling of
/// the stem's end ("deploys", "deployed" and "deployment" all become "deploi", "failures" and
/// "failed" both "fail"). A suffix is only stripped when at least 3 characters remain.
fn stem(word: &str) -> String {
    let long_enough = |stem: &str| stem.chars().count() >= 3;
    let mut stem = word.to_owned();
    if let Some(s) = stem.strip_suffix("ies").filter(|s| long_enough(s)) {
        stem = format!("{s}y");
    } else if let Some(s) =
        stem.strip_suffix("es").filter(|s| long_enough(s) && ["s", "x", "z", "ch", "sh"].iter().any(|e| s.ends_with(e)))
    {
        stem = s.to_owned();
    } else if let Some(s) = stem.strip_suffix('s').filter(|s| long_enough(s) && !s.ends_with(['s', 'u', 'i'])) {
        stem = s.to_owned();
    }
    for suffix in ["ingly", "edly", "ation", "ment", "ness", "ure", "ing", "ed", "ly"] {
        if let Some(s) = stem.strip_suffix(suffix).filter(|s| long_enough(s)) {
            let mut s = s.to_owned();
            // "stopped" and "stopping" become "stop"; "rolled" stays "roll".
            let mut end = s.chars().rev();
            if let (true, Some(a), Some(b)) =
                (matches!(suffix, "ingly" | "edly" | "ing" | "ed"), end.next(), end.next())
                && a == b
                && a.is_alphabetic()
                && !"aeiouls".contains(a)
                && s.chars().count() > 3
            {
                s.pop();
            }
            stem = s;
            break;
        }
    }
    if stem.chars().count() > 3 {
        if let Some(s) = stem.strip_suffix('y') {
            stem = format!("{s}i");
        } else if let Some(s) = stem.strip_suffix('e') {
            stem = s.to_owned();
        }
    }
    stem
}

/// The first `max` characters of `text`, cut on a character boundary.
fn capped(text: &str, max: usize) -> &str {
    text.char_indices().nth(max).map_or(text, |(at, _)| &text[..at])
}

/// The terms of a cluster: its title's twice, then its notes'.
fn cluster_terms(cluster: &CauseText<'_>) -> impl Iterator<Item = String> {
    let title = capped(cluster.title, MAX_CHARS);
    let text = capped(cluster.text, MAX_CHARS.saturating_sub(title.chars().count()));
    terms(title).into_iter().chain(terms(title)).chain(terms(text))
}

/// For each new cluster, its nonzero similarities to the past clusters, as (past index, score).
fn similarities(new: &[CauseText<'_>], past: &[CauseText<'_>]) -> Vec<Vec<(usize, f64)>> {
    // Terms are numbered in order of first appearance, and each cluster becomes a sparse vector
    // of (term number, count) in term order, counting document frequencies on the way.
    let mut numbers: HashMap<String, usize> = HashMap::new();
    let mut df: Vec<f64> = Vec::new();
    let mut vectors: Vec<Vec<(usize, f64)>> = new
        .iter()
        .chain(past)
        .map(|cluster| {
            let mut counts: BTreeMap<usize, f64> = BTreeMap::new();
            for term in cluster_terms(cluster) {
                let number = *numbers.entry(term).or_insert_with(|| {
                    df.push(0.0);
                    df.len() - 1
                });
                let count = counts.entry(number).or_insert(0.0);
                if *count == 0.0
                    && let Some(d) = df.get_mut(number)
                {
                    *d += 1.0;
                }
                *count += 1.0;
            }
            counts.into_iter().collect()
        })
        .collect();
    // Each vector weighted by the smoothed idf and scaled to length 1, so a dot product is a cosine.
    let n = (new.len() + past.len()) as f64;
    let idf: Vec<f64> = df.iter().map(|df| ((1.0 + n) / (1.0 + df)).ln() + 1.0).collect();
    for vector in &mut vectors {
        for (number, weight) in vector.iter_mut() {
            *weight *= idf.get(*number).copied().unwrap_or(1.0);
        }
        let norm = vector.iter().map(|(_, w)| w * w).sum::<f64>().sqrt();
        for (_, weight) in vector.iter_mut() {
            *weight /= norm.max(f64::MIN_POSITIVE);
        }
    }
    let (new_vectors, past_vectors) = vectors.split_at(new.len());
    // An inverted index of the past clusters, so only clusters sharing a term are ever touched.
    let mut postings: Vec<Vec<(usize, f64)>> = vec![Vec::new(); idf.len()];
    for (index, vector) in past_vectors.iter().enumerate() {
        for &(number, weight) in vector {
            if let Some(list) = postings.get_mut(number) {
                list.push((index, weight));
            }
        }
    }
    let mut scores = vec![0.0; past.len()];
    new_vectors
        .iter()
        .map(|vector| {
            scores.fill(0.0);
            for &(number, weight) in vector {
                for &(index, past_weight) in postings.get(number).into_iter().flatten() {
                    if let Some(score) = scores.get_mut(index) {
                        *score += weight * past_weight;
                    }
                }
            }
            scores.iter().enumerate().filter(|(_, s)| **s > 0.0).map(|(i, s)| (i, s.min(1.0))).collect()
        })
        .collect()
}

/// For each new cluster, the past clusters it is like (score at least [`THRESHOLD`]), best first,
/// at most `per_cluster` each. Scores are the cosine similarity of TF-IDF vectors, with document
/// frequencies counted over the new and past clusters together (smoothed: idf = ln((1 + N) /
/// (1 + df)) + 1), and a cluster's title counted twice. Ties are broken by past id, so the result
/// depends only on the input, and a new cluster is never matched with a past one of the same id.
pub fn matches(new: &[CauseText<'_>], past: &[CauseText<'_>], per_cluster: usize) -> Vec<Match> {
    if new.is_empty() || past.is_empty() || per_cluster == 0 {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (cluster, scores) in new.iter().zip(similarities(new, past)) {
        let mut found: Vec<(&CauseText<'_>, f64)> = scores
            .into_iter()
            .filter_map(|(index, score)| past.get(index).map(|p| (p, score)))
            .filter(|(p, score)| *score >= THRESHOLD && p.id != cluster.id)
            .collect();
        found.sort_by(|(a, x), (b, y)| y.total_cmp(x).then_with(|| a.id.cmp(b.id)));
        found.truncate(per_cluster);
        out.extend(found.into_iter().map(|(p, score)| Match {
            new: cluster.id.to_owned(),
            past: p.id.to_owned(),
            score,
        }));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cause<'a>(id: &'a str, title: &'a str, text: &'a str) -> CauseText<'a> {
        CauseText { id, title, text }
    }

    fn new_clusters() -> Vec<CauseText<'static>> {
        vec![
            cause("n-deploy", "Deploys broke on Friday", "the deploy pipeline failed again, rollback took an hour"),
            cause("n-flaky", "Flaky tests", "integration tests flaky on CI, retries hide failures"),
            cause("n-pairing", "Great pairing sessions", "pairing on the parser helped the new joiners ramp up"),
            cause(
                "n-pager",
                "On-call pager fatigue",
                "paged every night by noisy alerts; nobody sleeps before a release",
            ),
            cause("n-notes", "Release notes late", "nobody owned writing the release notes"),
        ]
    }

    fn past_clusters() -> Vec<CauseText<'static>> {
        vec![
            cause("p-deploy", "Deployment pipeline failures", "pipeline failed during deploy; rollback was slow"),
            cause("p-flaky", "Test flakiness", "flaky integration tests in CI"),
            cause("p-release", "Release blocked by QA", "manual QA pass blocked the release for two days"),
            cause("p-scope", "Scope creep", "stories grew mid-sprint, acceptance criteria kept changing"),
        ]
    }

    /// The similarity of two clusters, compared within the whole fixture.
    fn score(new: &str, past: &str) -> f64 {
        let (n, p) = (new_clusters(), past_clusters());
        let i = n.iter().position(|c| c.id == new).expect("a new fixture");
        let j = p.iter().position(|c| c.id == past).expect("a past fixture");
        let all = similarities(&n, &p);
        all[i].iter().find(|(k, _)| *k == j).map_or(0.0, |(_, s)| *s)
    }

    #[test]
    fn the_same_cause_is_matched_and_others_are_not() {
        for (n, p) in [("n-deploy", "p-deploy"), ("n-flaky", "p-flaky")] {
            let s = score(n, p);
            println!("{n} ~ {p}: {s:.3}");
            assert!(s >= THRESHOLD + 0.1, "{n} ~ {p} scored {s}");
        }
        for (n, p) in [
            ("n-pairing", "p-deploy"),
            ("n-pager", "p-flaky"),
            ("n-deploy", "p-flaky"),
            ("n-flaky", "p-deploy"),
            ("n-notes", "p-release"),
        ] {
            let s = score(n, p);
            println!("{n} !~ {p}: {s:.3}");
            assert!(s <= THRESHOLD - 0.1, "{n} !~ {p} scored {s}");
        }
        let found: Vec<(String, String)> =
            matches(&new_clusters(), &past_clusters(), 3).into_iter().map(|m| (m.new, m.past)).collect();
        let expected = [("n-deploy", "p-deploy"), ("n-flaky", "p-flaky")].map(|(n, p)| (n.to_owned(), p.to_owned()));
        assert_eq!(found, expected);
    }

    #[test]
    fn a_near_miss_sharing_one_word_is_not_matched() {
        let pager = cause("n-pager", "On-call pager fatigue", "flaky alerts page us at night");
        let flaky = cause("p-flaky", "Flaky tests", "integration tests flaky on CI, retries hide failures");
        let s = similarities(std::slice::from_ref(&pager), std::slice::from_ref(&flaky))[0]
            .first()
            .map_or(0.0, |(_, s)| *s);
        println!("near miss: {s:.3}");
        assert!(s > 0.0 && s <= THRESHOLD - 0.1, "scored {s}");
        assert!(matches(&[pager], &[flaky], 3).is_empty());
    }

    #[test]
    fn terms_are_stemmed_without_stop_words() {
        let t = terms("deploying deployed deploys deployment");
        assert_eq!(t[..4], ["deploi"; 4]);
        assert_eq!(t[4..], ["deploi deploi"; 3]);
        assert_eq!(terms("The deploy and it was SLOW"), ["deploi", "slow", "deploi slow"]);
        assert_eq!(terms("failures failed failing"), ["fail", "fail", "fail", "fail fail", "fail fail"]);
        assert_eq!(terms("stopped stopping rolled").join(","), "stop,stop,roll,stop stop,stop roll");
        assert_eq!(terms("flakiness flaky retries").join(","), "flaki,flaki,retri,flaki flaki,flaki retri");
        assert!(terms("").is_empty());
        assert!(terms("a an to of, and the; was!").is_empty());
    }

    #[test]
    fn any_text_is_taken_without_panicking() {
        for text in
            ["Ünïcödé façade ßß", "日本語のテキスト", "🎉🎉🎉 ing ed s ies", "İSTANBUL ǅemal ﬃces", "\u{0}\u{FFFF}"]
        {
            let _ = terms(text);
        }
        let huge = "é日🎉 deploy pipeline ".repeat(10_000);
        let a = cause("a", &huge, &huge);
        let b = cause("b", "", &huge);
        let found = matches(&[a.clone(), b.clone()], &[a, b], 5);
        assert_eq!(found.len(), 2);
        assert!(found.iter().all(|m| m.new != m.past && m.score <= 1.0));
    }

    #[test]
    fn results_are_deterministic_and_never_self_matches() {
        let all: Vec<_> = new_clusters().into_iter().chain(past_clusters()).collect();
        let first = matches(&all, &all, 5);
        assert_eq!(first, matches(&all, &all, 5));
        assert!(first.iter().all(|m| m.new != m.past));
        // Equal scores come in past-id order, and `per_cluster` caps them.
        let twin = |id| cause(id, "Flaky tests", "flaky integration tests in CI");
        let found = matches(&[twin("new")], &[twin("z"), twin("b"), twin("a")], 2);
        let ids: Vec<&str> = found.iter().map(|m| m.past.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        assert!(found.iter().all(|m| (m.score - 1.0).abs() < 1e-9));
    }

    #[test]
    fn empty_inputs_match_nothing() {
        let past = past_clusters();
        assert!(matches(&[], &past, 3).is_empty());
        assert!(matches(&new_clusters(), &[], 3).is_empty());
        assert!(matches(&new_clusters(), &past, 0).is_empty());
        assert!(matches(&[cause("e", "", "")], &[cause("f", "", ""), cause("g", "the", "and")], 3).is_empty());
    }

    #[test]
    fn a_large_history_is_compared() {
        let words =
            ["deploy", "pipeline", "flaky", "tests", "pager", "scope", "review", "backlog", "estimate", "release"];
        let texts: Vec<(String, String)> = (0..2_200)
            .map(|i: usize| {
                let text: Vec<&str> = (0..40).map(|k| words[(i * 7 + k * k * 3 + i / 10) % words.len()]).collect();
                (format!("c{i}"), text.join(" "))
            })
            .collect();
        let clusters: Vec<CauseText<'_>> = texts.iter().map(|(id, text)| cause(id, "", text)).collect();
        let (new, past) = clusters.split_at(200);
        let found = matches(new, past, 3);
        assert!(found.len() <= 600);
    }
}
