//! Chinese mobile numbers: normalisation to E.164 and masking.
//!
//! Leads arrive from web forms and ad platforms in many spellings
//! ("138 1234 5678", "+86-138-1234-5678", "(0086)13812345678", or fullwidth
//! digits from Chinese input methods). [`Phone::parse`] accepts those and
//! rejects anything else rather than guessing. A full number is personal
//! data: `Debug` and `Display` print only the masked form, and [`PhoneError`]
//! never repeats the input.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A normalised mainland mobile number, stored as E.164 (`+8613812345678`).
/// `Debug` and `Display` print the masked form so that a stray log line never leaks it.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Phone(String);

/// Why an input is not a mainland mobile number. The messages deliberately
/// leave the input out so that errors can be logged safely.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("phone number is empty")]
    Empty,
    #[error("phone number is not an 11-digit mainland mobile number")]
    NotMobile,
    #[error("phone number contains a character that is neither a digit nor a separator")]
    InvalidCharacter,
}

/// Longest digit string worth collecting: `0086` + 11 digits. Anything longer
/// is already wrong, and stopping early bounds the work on hostile input.
const MAX_DIGITS: usize = 15;

impl Phone {
    /// Parses a mainland mobile number written in any of the usual ways.
    ///
    /// Accepted: ASCII or fullwidth digits; spaces, dashes, dots and
    /// parentheses anywhere; a country code written `+86`, `0086`, or `86`
    /// (the bare form only when exactly 11 digits follow, so that it cannot
    /// be confused with part of the number). The national number must be
    /// 11 digits of the form `1[3-9]xxxxxxxxx`.
    pub fn parse(input: &str) -> Result<Self, PhoneError> {
        let mut digits = String::with_capacity(MAX_DIGITS);
        let mut plus = false;
        for c in input.chars() {
            if let Some(d) = ascii_digit(c) {
                if digits.len() == MAX_DIGITS {
                    return Err(PhoneError::NotMobile);
                }
                digits.push(d);
            } else if matches!(c, '+' | '＋') && !plus && digits.is_empty() {
                // Only one plus, and only before the first digit ("+86 ...").
                plus = true;
            } else if !is_separator(c) {
                return Err(PhoneError::InvalidCharacter);
            }
        }
        if digits.is_empty() {
            return Err(PhoneError::Empty);
        }

        let national = if plus {
            // After a plus comes a country code, and only China's is ours.
            digits.strip_prefix("86").ok_or(PhoneError::NotMobile)?
        } else if let Some(rest) = digits.strip_prefix("0086") {
            rest
        } else if digits.len() == 13 {
            digits.strip_prefix("86").unwrap_or(&digits)
        } else {
            &digits
        };
        if !is_mobile(national) {
            return Err(PhoneError::NotMobile);
        }
        Ok(Phone(format!("+86{national}")))
    }

    /// The E.164 form, e.g. `+8613812345678`.
    pub fn e164(&self) -> &str {
        &self.0
    }

    /// The 11-digit national number, e.g. `13812345678`.
    pub fn national(&self) -> &str {
        &self.0[3..]
    }

    /// The national number with digits 4 to 7 hidden, e.g. `138****5678`:
    /// the usual Chinese way to show a number to people who must not have it.
    pub fn masked(&self) -> String {
        let n = self.national();
        format!("{}****{}", &n[..3], &n[7..])
    }
}

/// Maps ASCII and fullwidth (U+FF10..U+FF19) digits to ASCII.
fn ascii_digit(c: char) -> Option<char> {
    match c {
        '0'..='9' => Some(c),
        '０'..='９' => char::from_digit(c as u32 - '０' as u32, 10),
        _ => None,
    }
}

/// Punctuation people put inside phone numbers, ASCII or fullwidth.
fn is_separator(c: char) -> bool {
    c.is_whitespace() || matches!(c, '-' | '.' | '(' | ')' | '－' | '．' | '（' | '）')
}

/// `1[3-9]` followed by nine more digits: the mainland mobile ranges.
fn is_mobile(national: &str) -> bool {
    let b = national.as_bytes();
    b.len() == 11
        && b[0] == b'1'
        && (b'3'..=b'9').contains(&b[1])
        && b.iter().all(u8::is_ascii_digit)
}

impl fmt::Debug for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Phone({})", self.masked())
    }
}

impl fmt::Display for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

impl FromStr for Phone {
    type Err = PhoneError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Phone::parse(s)
    }
}

impl TryFrom<String> for Phone {
    type Error = PhoneError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Phone::parse(&s)
    }
}

impl From<Phone> for String {
    fn from(p: Phone) -> String {
        p.0
    }
}

// ------------------------------------------------------------ in free text
//
// One matcher for every place a phone may hide in text: masking what a
// person sees (a customer name, an echoed field), and the notifier's
// pre-send leak guard. A "digit" is ASCII, fullwidth or a Chinese numeral
// (〇零一二三四五六七八九, 幺 for 1); between two digits any short run (up
// to 3 characters) of separators is allowed: spaces (double, ideographic),
// `- . _ , / ( ) + *`, their fullwidth forms, `、` and `·`. So `138_1234_5678`,
// `138,1234,5678`, `138/1234/5678`, `(138)12345678`, `１３８ １２３４ ５６７８`
// and `一三八一二三四五六七八` are all one run of 11 digits.

/// The digit a character stands for in a phone written in text.
fn text_digit(c: char) -> Option<u8> {
    match c {
        '0'..='9' => Some(c as u8 - b'0'),
        '０'..='９' => Some((c as u32 - '０' as u32) as u8),
        '〇' | '零' => Some(0),
        '一' | '幺' => Some(1),
        '二' => Some(2),
        '三' => Some(3),
        '四' => Some(4),
        '五' => Some(5),
        '六' => Some(6),
        '七' => Some(7),
        '八' => Some(8),
        '九' => Some(9),
        _ => None,
    }
}

fn text_separator(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '-' | '.' | '_' | ',' | '/' | '(' | ')' | '+' | '*' | '\u{2010}'
                ..='\u{2015}'
                    | '－'
                    | '．'
                    | '＿'
                    | '，'
                    | '／'
                    | '（'
                    | '）'
                    | '＋'
                    | '、'
                    | '·'
                    | '。'
        )
}

/// Most separators allowed between two digits of one run.
const MAX_GAP: usize = 3;

/// Runs of digits in `chars`: (first char index, end char index, digits).
fn digit_runs(chars: &[char]) -> Vec<(usize, usize, Vec<u8>)> {
    let mut runs = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let Some(first) = text_digit(chars[i]) else {
            i += 1;
            continue;
        };
        let start = i;
        let mut digits = vec![first];
        let mut end = i + 1;
        let mut j = i + 1;
        loop {
            let mut k = j;
            while k < chars.len() && k - j < MAX_GAP && text_separator(chars[k]) {
                k += 1;
            }
            match chars.get(k).and_then(|c| text_digit(*c)) {
                Some(d) => {
                    digits.push(d);
                    end = k + 1;
                    j = k + 1;
                }
                None => break,
            }
        }
        runs.push((start, end, digits));
        i = end;
    }
    runs
}

/// The national part of a run (a leading `86` or `0086` dropped when what
/// follows is 11 digits).
fn national(digits: &[u8]) -> &[u8] {
    match digits {
        [8, 6, rest @ ..] if rest.len() == 11 => rest,
        [0, 0, 8, 6, rest @ ..] if rest.len() == 11 => rest,
        _ => digits,
    }
}

fn mobile_digits(n: &[u8]) -> bool {
    n.len() == 11 && n[0] == 1 && (3..=9).contains(&n[1])
}

/// Masks every run of 7 or more digits (any of the forms above) as
/// `138****5678`: a mobile or landline number in a free-text field or a name
/// is never shown whole. Shorter runs ("H5", "2025款") are left alone.
pub fn mask_phones(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (start, end, digits) in digit_runs(&chars) {
        let n = national(&digits);
        if n.len() < 7 {
            continue;
        }
        out.extend(&chars[at..start]);
        let shown = |d: &[u8]| d.iter().map(|d| char::from(b'0' + d)).collect::<String>();
        out.push_str(&shown(&n[..3]));
        out.push_str("****");
        out.push_str(&shown(&n[n.len() - 4..]));
        at = end;
    }
    out.extend(&chars[at..]);
    out
}

/// True if `text` holds a full mainland mobile number in any of the forms
/// above (the notifier's pre-send leak guard).
pub fn contains_phone(text: &str) -> bool {
    let chars: Vec<char> = text.chars().collect();
    // The whole run, not any 11 of its digits: ids like `brand-14396-74620873`
    // are long runs that merely contain a mobile-looking stretch.
    digit_runs(&chars)
        .iter()
        .any(|(_, _, digits)| mobile_digits(national(digits)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const E164: &str = "+8613812345678";

    fn ok(input: &str) -> String {
        Phone::parse(input)
            .unwrap_or_else(|e| panic!("{input:?} should parse: {e}"))
            .e164()
            .to_owned()
    }

    #[test]
    fn accepts_common_formattings() {
        for input in [
            "13812345678",
            "138 1234 5678",
            "138-1234-5678",
            "138.1234.5678",
            "(138) 1234 5678",
            "+8613812345678",
            "+86 138 1234 5678",
            "+86-138-1234-5678",
            "(+86) 13812345678",
            "8613812345678",
            "86 138 1234 5678",
            "008613812345678",
            "0086 138 1234 5678",
            "  13812345678\t",
            "１３８１２３４５６７８",
            "＋８６ １３８－１２３４－５６７８",
            "（＋８６）１３８ １２３４ ５６７８",
        ] {
            assert_eq!(ok(input), E164, "{input:?}");
        }
    }

    #[test]
    fn accessors() {
        let p = Phone::parse("138 1234 5678").unwrap();
        assert_eq!(p.e164(), "+8613812345678");
        assert_eq!(p.national(), "13812345678");
        assert_eq!(p.masked(), "138****5678");
        assert_eq!(p.to_string(), "138****5678");
        assert_eq!(format!("{p:?}"), "Phone(138****5678)");
        assert_eq!("13812345678".parse::<Phone>(), Ok(p));
    }

    #[test]
    fn rejects_empty() {
        for input in ["", "   ", "()-.", "+"] {
            assert_eq!(Phone::parse(input), Err(PhoneError::Empty), "{input:?}");
        }
    }

    #[test]
    fn rejects_junk_instead_of_stripping_it() {
        for input in [
            "138abc12345678",
            "13812345678x",
            "tel:13812345678",
            "138_1234_5678",
            "138/1234/5678",
            "+-+8613812345678",
            "86+13812345678",
            "138１２３４５６７８#",
        ] {
            assert_eq!(
                Phone::parse(input),
                Err(PhoneError::InvalidCharacter),
                "{input:?}"
            );
        }
    }

    #[test]
    fn rejects_non_mobiles() {
        for input in [
            "1381234567",      // 10 digits
            "138123456789",    // 12 digits
            "12812345678",     // 12x is not a mobile range
            "10812345678",     // nor is 10x
            "23812345678",     // does not start with 1
            "01012345678",     // Beijing landline with trunk prefix
            "+1 415 555 0100", // another country
            "+13812345678",    // plus without a country code
            "+0086 13812345678",
            "86138123456789", // "86" counts as a country code only before 11 digits
            "861381234567",
            "0086138123456",
            "1381234567800000000000",
        ] {
            assert_eq!(Phone::parse(input), Err(PhoneError::NotMobile), "{input:?}");
        }
    }

    #[test]
    fn errors_never_echo_input() {
        for input in ["13812345678abc", "1381234567", "+1 415 555 0100"] {
            let err = Phone::parse(input).unwrap_err();
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains("1381234567"), "{shown}");
            assert!(!shown.contains("415"), "{shown}");
        }
    }

    #[test]
    fn serde_uses_e164_and_validates() {
        let p = Phone::parse("13812345678").unwrap();
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(json, "\"+8613812345678\"");
        assert_eq!(serde_json::from_str::<Phone>(&json).unwrap(), p);
        assert_eq!(
            serde_json::from_str::<Phone>("\"138 1234 5678\"").unwrap(),
            p
        );
        let err = serde_json::from_str::<Phone>("\"1381234567x\"").unwrap_err();
        assert!(!err.to_string().contains("1381234567"), "{err}");
    }

    fn national() -> impl Strategy<Value = String> {
        "1[3-9][0-9]{9}"
    }

    /// Writes `national` in one of the accepted styles, with random
    /// separators between digits and random fullwidth digits.
    fn formatted(
        national: &str,
        prefix: usize,
        separators: &[usize],
        fullwidth: &[bool],
    ) -> String {
        const PREFIXES: [&str; 7] = ["", "+86", "+86 ", "86", "0086", "(+86)", "＋８６-"];
        const SEPARATORS: [&str; 7] = ["", "", " ", "-", ".", "　", "－"];
        let mut out = String::from(PREFIXES[prefix % PREFIXES.len()]);
        for (i, c) in national.chars().enumerate() {
            if fullwidth[i] {
                out.push(char::from_u32('０' as u32 + c.to_digit(10).unwrap()).unwrap());
            } else {
                out.push(c);
            }
            out.push_str(SEPARATORS[separators[i] % SEPARATORS.len()]);
        }
        out
    }

    proptest! {
        #[test]
        fn every_formatting_parses_to_the_same_e164(
            n in national(),
            prefix in 0usize..7,
            separators in prop::collection::vec(0usize..7, 11),
            fullwidth in prop::collection::vec(any::<bool>(), 11),
        ) {
            let input = formatted(&n, prefix, &separators, &fullwidth);
            let p = Phone::parse(&input).map_err(|e| TestCaseError::fail(format!("{input:?}: {e}")))?;
            prop_assert_eq!(p.e164(), format!("+86{n}"));
            prop_assert_eq!(p.national(), n.as_str());
        }

        #[test]
        fn e164_round_trips(n in national()) {
            let p = Phone::parse(&n).unwrap();
            prop_assert_eq!(Phone::parse(p.e164()), Ok(p.clone()));
            prop_assert_eq!(Phone::parse(p.national()), Ok(p));
        }

        #[test]
        fn masked_hides_digits_4_to_7(n in national()) {
            let masked = Phone::parse(&n).unwrap().masked();
            prop_assert_eq!(masked.len(), 11);
            prop_assert_eq!(&masked[..3], &n[..3]);
            prop_assert_eq!(&masked[3..7], "****");
            prop_assert_eq!(&masked[7..], &n[7..]);
        }

        #[test]
        fn debug_and_display_never_show_the_number(n in national()) {
            let p = Phone::parse(&n).unwrap();
            for shown in [format!("{p}"), format!("{p:?}"), format!("{:?}", Some(&p))] {
                prop_assert!(!shown.contains(&n), "{}", shown);
                prop_assert!(shown.contains(&p.masked()), "{}", shown);
            }
        }

        #[test]
        fn random_input_never_panics(s in any::<String>()) {
            let _ = Phone::parse(&s);
        }

        #[test]
        fn random_phone_like_input_never_panics(s in "[0-9０-９+＋ ()（）.\\-a-z]{0,24}") {
            if let Ok(p) = Phone::parse(&s) {
                prop_assert!(is_mobile(p.national()));
            }
        }
    }
}

#[cfg(test)]
mod text_tests {
    use super::*;
    use proptest::prelude::*;

    const FORMS: [&str; 14] = [
        "13812345678",
        "138 1234 5678",
        "138  1234  5678",
        "138_1234_5678",
        "138,1234,5678",
        "138/1234/5678",
        "138-1234-5678",
        "(138)12345678",
        "（138）1234 5678",
        "+86 138 1234 5678",
        "１３８１２３４５６７８",
        "一三八一二三四五六七八",
        "幺三八 幺二三四 五六七八",
        "138\u{3000}1234\u{3000}5678",
    ];

    #[test]
    fn every_form_from_the_issue_is_found_and_masked() {
        for form in FORMS {
            let text = format!("客户说：{form}，尽快联系");
            assert!(contains_phone(&text), "{form}");
            let masked = mask_phones(&text);
            assert!(!contains_phone(&masked), "{form} -> {masked}");
            assert!(masked.contains("****"), "{form} -> {masked}");
            // No 5 digits of the middle survive.
            assert!(!masked.contains("1234"), "{form} -> {masked}");
        }
        assert_eq!(mask_phones("(138)12345678"), "(138****5678");
        // Short runs, dates and model names stay.
        for plain in ["鸿途H5 2025款", "第一次来", "S7", "二〇二五年"] {
            assert_eq!(mask_phones(plain), plain);
            assert!(!contains_phone(plain));
        }
    }

    fn digit_form(d: u8, style: u8) -> char {
        match style % 3 {
            0 => char::from(b'0' + d),
            1 => char::from_u32('０' as u32 + u32::from(d)).unwrap(),
            _ => ['〇', '一', '二', '三', '四', '五', '六', '七', '八', '九'][usize::from(d)],
        }
    }

    const SEPARATORS: [&str; 12] = [
        " ", "  ", "-", "_", ",", "/", ".", "\u{3000}", "、", "－", ") ", "，",
    ];

    proptest! {
        /// Any mobile number written with any digits and separators (at
        /// most 3 characters between two digits), inside any text without
        /// digits, is found, and masking leaves no full number.
        #[test]
        fn any_written_form_is_found_and_masked(
            second in 3u8..=9,
            rest in proptest::collection::vec(0u8..=9, 9),
            styles in proptest::collection::vec(0u8..3, 11),
            gaps in proptest::collection::vec(proptest::option::of(0usize..SEPARATORS.len()), 10),
            before in "[a-zA-Z客户电话：]{0,8}",
            after in "[a-zA-Z，谢谢]{0,8}",
        ) {
            let digits: Vec<u8> = [1, second].into_iter().chain(rest).collect();
            let mut form = String::new();
            for (i, d) in digits.iter().enumerate() {
                form.push(digit_form(*d, styles[i]));
                if let Some(Some(g)) = gaps.get(i) {
                    if i < 10 {
                        form.push_str(SEPARATORS[*g]);
                    }
                }
            }
            let text = format!("{before}{form}{after}");
            prop_assert!(contains_phone(&text), "{}", text);
            let masked = mask_phones(&text);
            prop_assert!(!contains_phone(&masked), "{} -> {}", text, masked);
            let middle: String = digits[3..7].iter().map(|d| char::from(b'0' + d)).collect();
            let shown: String = masked.chars().filter_map(text_digit).map(|d| char::from(b'0' + d)).collect();
            prop_assert!(!shown.contains(&middle) || shown.len() < 11, "{} -> {}", text, masked);
            prop_assert_eq!(shown.len(), 7, "{} -> {}", text, masked);
        }
    }
}
