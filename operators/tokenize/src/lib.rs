//! `tokenize`: splits each line into words and emits one element per word,
//! keyed by the lower-cased word, with the value `1`.
//!
//! The rule: words are the segments of Unicode word boundaries (UAX #29,
//! through `unicode-segmentation`) that hold at least one letter or digit,
//! lower-cased with Unicode's full case mapping. So punctuation and spaces
//! are dropped; apostrophes inside a word stay (`don't`); a Han ideograph
//! (Chinese, Japanese kanji) or a Hiragana character is a word of its own, so
//! CJK text without spaces comes out as one word per character rather than
//! one giant word; runs of Katakana stay together. Scripts without spaces
//! and without per-character boundaries (Thai, Lao) come out as a run per
//! phrase, because UAX #29 needs a dictionary to split them.

use unicode_segmentation::UnicodeSegmentation;
use weir_sdk::prelude::*;

/// Line to words.
struct Tokenize;

impl Operator for Tokenize {
    fn open(_ctx: &mut OpenContext) -> Result<Self, String> {
        Ok(Tokenize)
    }

    fn process(&mut self, element: Element<'_>, ctx: &mut Context) {
        let text = String::from_utf8_lossy(element.value);
        for word in text.unicode_words() {
            let word = word.to_lowercase();
            ctx.emit(Some(word.as_bytes()), b"1", element.timestamp);
        }
    }
}

export_operator!(Tokenize);
