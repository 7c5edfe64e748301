//! The fast path for newline-delimited JSON rows that are flat objects, decoded straight
//! into the signature's primitive columns (string, long, double, float).
//!
//! It accepts only what it can decode exactly as arrow-json does with
//! `coerce_primitive` (the general path): strings, numbers and booleans into string
//! columns (as their JSON text), integer literals into long columns, number literals into
//! double/float columns, `null` and missing keys as NULL, unknown keys (nested or not)
//! skipped, the last of duplicate keys winning. Anything else (nested values in a
//! declared column, a string into a number column, invalid JSON or UTF-8, escaped keys,
//! two objects on a line) makes [`FlatJsonDecoder::decode`] return `None`, and the block
//! goes through arrow-json, which also reports bad rows with their line numbers.
//!
//! Why: arrow-json builds a tape of the whole block, then looks every key up in a
//! SipHash map; for wide flat rows this decoder does one pass, guesses each key from the
//! previous row's key order, and appends values directly.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Float32Builder, Float64Builder, Int64Builder, RecordBatch, StringBuilder,
};
use arrow::datatypes::{DataType, SchemaRef};

/// Column kinds the fast path fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Utf8,
    Int64,
    Float64,
    Float32,
}

/// Where one value of a row lies in the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Absent,
    Null,
    True,
    False,
    /// A string's contents (between the quotes); `true` when it has escapes.
    Str(usize, usize, bool),
    /// A number literal; `true` when it is an integer (no fraction or exponent).
    Num(usize, usize, bool),
}

/// Decodes flat JSON lines into a batch of `schema`, or declines.
#[derive(Debug)]
pub(crate) struct FlatJsonDecoder {
    schema: SchemaRef,
    names: Vec<Vec<u8>>,
    kinds: Vec<Kind>,
    /// For the k-th key of a row: the key the previous row had there, and its field
    /// (`None`: not a column), so that rows with the same key order skip the search.
    hints: Vec<(Vec<u8>, Option<usize>)>,
    slots: Vec<Slot>,
    scratch: String,
    /// Sizes of the previous block, which the next block's builders start from.
    last: Option<BlockSizes>,
}

/// What one block held: its bytes, rows and the value bytes of each column.
#[derive(Debug)]
struct BlockSizes {
    bytes: usize,
    rows: usize,
    values: Vec<usize>,
}

impl BlockSizes {
    /// `n` (of the last block) scaled to a block of `bytes`, with 5% to spare: batches
    /// are held until their chunk is written, so a buffer that doubled when it filled up
    /// would hold up to twice the memory its rows need.
    fn scaled(&self, n: usize, bytes: usize) -> usize {
        let scaled = n as u128 * bytes as u128 * 105 / (self.bytes.max(1) as u128 * 100);
        usize::try_from(scaled)
            .unwrap_or(usize::MAX)
            .saturating_add(64)
    }
}

impl FlatJsonDecoder {
    /// A decoder for `schema`, or `None` when a column is not a primitive it fills.
    pub(crate) fn try_new(schema: &SchemaRef) -> Option<Self> {
        let kinds = schema
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                DataType::Utf8 => Some(Kind::Utf8),
                DataType::Int64 => Some(Kind::Int64),
                DataType::Float64 => Some(Kind::Float64),
                DataType::Float32 => Some(Kind::Float32),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Self {
            schema: Arc::clone(schema),
            names: schema
                .fields()
                .iter()
                .map(|f| f.name().as_bytes().to_vec())
                .collect(),
            slots: vec![Slot::Absent; kinds.len()],
            kinds,
            hints: Vec::new(),
            scratch: String::new(),
            last: None,
        })
    }

    /// Decodes every non-blank line of `block`; `None` when any line needs the general
    /// path.
    pub(crate) fn decode(&mut self, block: &[u8]) -> Option<RecordBatch> {
        // Invalid UTF-8 anywhere (even in a key that is not a column) is arrow-json's
        // error to report. Checked once here: values are cut at ASCII quotes, so each is
        // valid UTF-8 too and the string columns are built without checking again.
        let text = std::str::from_utf8(block).ok()?;
        // String offsets are 32-bit: a larger block (one huge line) takes the general path.
        i32::try_from(block.len()).ok()?;
        let n = block.len();
        let mut columns: Vec<Builder> = match &self.last {
            Some(last) => self
                .kinds
                .iter()
                .zip(&last.values)
                .map(|(k, &values)| {
                    Builder::new(*k, last.scaled(last.rows, n), last.scaled(values, n))
                })
                .collect(),
            // Most string columns hold a small share of a block's bytes.
            None => {
                let lines = memchr::memchr_iter(b'\n', block).count() + 1;
                let kinds = self.kinds.iter();
                kinds.map(|k| Builder::new(*k, lines, n / 32)).collect()
            }
        };
        let mut rows = 0usize;
        let mut start = 0;
        while start < block.len() {
            let end = memchr::memchr(b'\n', &block[start..]).map_or(block.len(), |p| start + p);
            let line = text.get(start..end)?;
            start = end + 1;
            if line.bytes().all(|b| b.is_ascii_whitespace()) {
                continue;
            }
            self.parse_line(line.as_bytes())?;
            for (i, builder) in columns.iter_mut().enumerate() {
                builder.append(line, self.slots[i], &mut self.scratch)?;
            }
            rows += 1;
        }
        self.last = Some(BlockSizes {
            bytes: n,
            rows,
            values: columns.iter().map(Builder::value_bytes).collect(),
        });
        let arrays: Vec<ArrayRef> = columns
            .into_iter()
            .map(Builder::finish)
            .collect::<Option<_>>()?;
        let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(rows));
        RecordBatch::try_new_with_options(Arc::clone(&self.schema), arrays, &options).ok()
    }

    /// Fills `self.slots` from one line holding one flat object.
    fn parse_line(&mut self, b: &[u8]) -> Option<()> {
        self.slots.fill(Slot::Absent);
        let mut i = skip_ws(b, 0);
        if b.get(i) != Some(&b'{') {
            return None;
        }
        i = skip_ws(b, i + 1);
        if b.get(i) == Some(&b'}') {
            return (skip_ws(b, i + 1) == b.len()).then_some(());
        }
        let mut k = 0usize;
        loop {
            if b.get(i) != Some(&b'"') {
                return None;
            }
            let key_start = i + 1;
            let (key_end, field) = match self.hinted_key(k, b, key_start) {
                Some(hit) => hit,
                None => {
                    let (key_end, escaped) = string_end(b, key_start)?;
                    if escaped {
                        return None; // escaped keys are rare: the general path handles them
                    }
                    (key_end, self.field_of(k, &b[key_start..key_end]))
                }
            };
            k += 1;
            i = skip_ws(b, key_end + 1);
            if b.get(i) != Some(&b':') {
                return None;
            }
            i = skip_ws(b, i + 1);
            let (slot, next) = match b.get(i)? {
                b'"' => {
                    let (end, escaped) = string_end(b, i + 1)?;
                    (Slot::Str(i + 1, end, escaped), end + 1)
                }
                b'-' | b'0'..=b'9' => {
                    let (end, integer) = number_end(b, i)?;
                    (Slot::Num(i, end, integer), end)
                }
                b't' if b[i..].starts_with(b"true") => (Slot::True, i + 4),
                b'f' if b[i..].starts_with(b"false") => (Slot::False, i + 5),
                b'n' if b[i..].starts_with(b"null") => (Slot::Null, i + 4),
                b'{' | b'[' if field.is_none() => (Slot::Absent, skip_nested(b, i)?),
                _ => return None,
            };
            if let Some(f) = field {
                self.slots[f] = slot;
            }
            i = skip_ws(b, next);
            match b.get(i)? {
                b',' => i = skip_ws(b, i + 1),
                b'}' => return (skip_ws(b, i + 1) == b.len()).then_some(()),
                _ => return None,
            }
        }
    }

    /// When the `k`-th key of the row, starting at `b[start]`, is the one the previous
    /// row had there: its closing quote and its column (`None` inside: not a column).
    /// A hinted key has no quote or escape, so its bytes and a quote after them are the
    /// whole key.
    fn hinted_key(&self, k: usize, b: &[u8], start: usize) -> Option<(usize, Option<usize>)> {
        let (seen, field) = self.hints.get(k)?;
        let end = start + seen.len();
        (b.get(end) == Some(&b'"') && same_bytes(&b[start..end], seen)).then_some((end, *field))
    }

    /// The column a key names (`None`: not a column), remembered for the next row.
    fn field_of(&mut self, k: usize, key: &[u8]) -> Option<usize> {
        let found = self.names.iter().position(|n| n == key);
        if self.hints.len() <= k {
            self.hints.resize_with(k + 1, || (Vec::new(), None));
        }
        let hint = &mut self.hints[k];
        hint.0.clear();
        hint.0.extend_from_slice(key);
        hint.1 = found;
        found
    }
}

/// `a == b` for slices of equal length, without a call to `memcmp` for keys of up to 16
/// bytes (most keys): two overlapping 8-byte words, or the bytes one by one.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word = |s: &[u8], at: usize| {
        s.get(at..at + 8)
            .and_then(|w| <[u8; 8]>::try_from(w).ok())
            .map(u64::from_le_bytes)
    };
    match n {
        0..8 => a.iter().zip(b).all(|(x, y)| x == y),
        8..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        _ => a == b,
    }
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\r' | b'\n') {
        i += 1;
    }
    i
}

/// The closing quote of a string whose contents start at `i`, and whether it has escapes;
/// `None` for a raw control character (JSON requires those escaped) or no closing quote.
/// Eight bytes at a time: a word without a quote, backslash or control byte is skipped
/// whole, else the first such byte is found from the word's mask.
fn string_end(b: &[u8], mut i: usize) -> Option<(usize, bool)> {
    let mut escaped = false;
    loop {
        if let Some(chunk) = b.get(i..i + 8) {
            let word = u64::from_le_bytes(chunk.try_into().ok()?);
            let mask = special_bytes(word);
            if mask == 0 {
                i += 8;
                continue;
            }
            i += (mask.trailing_zeros() / 8) as usize;
        }
        match *b.get(i)? {
            b'"' => return Some((i, escaped)),
            b'\\' => {
                escaped = true;
                i += 2;
            }
            c if c < 0x20 => return None,
            _ => i += 1, // only within the last 7 bytes of the line
        }
    }
}

/// The high bit of each byte of `word` (little-endian) that is a quote, a backslash or
/// a control character; exact for the lowest such byte (a borrow only runs upwards
/// from a real match), which is all [`string_end`] reads.
fn special_bytes(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let quote = zero_byte(word ^ (ONES * u64::from(b'"')));
    let backslash = zero_byte(word ^ (ONES * u64::from(b'\\')));
    let control = word.wrapping_sub(ONES * 0x20) & !word & HIGH;
    quote | backslash | control
}

/// The end of a JSON number literal starting at `i` (strict grammar), and whether it is
/// an integer.
fn number_end(b: &[u8], mut i: usize) -> Option<(usize, bool)> {
    let digits = |b: &[u8], mut i: usize| {
        let s = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        (i > s).then_some(i)
    };
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    let int_start = i;
    i = digits(b, i)?;
    if b[int_start] == b'0' && i - int_start > 1 {
        return None; // leading zero
    }
    let mut integer = true;
    if b.get(i) == Some(&b'.') {
        integer = false;
        i = digits(b, i + 1)?;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        integer = false;
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        i = digits(b, i)?;
    }
    Some((i, integer))
}

/// The position after a nested object or array starting at `i`.
fn skip_nested(b: &[u8], mut i: usize) -> Option<usize> {
    let mut depth = 0usize;
    while i < b.len() {
        match b[i] {
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            b'"' => {
                let (end, _) = string_end(b, i + 1)?;
                i = end;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// Decodes the escapes of a JSON string into `out`; `None` on an invalid escape.
fn unescape(s: &[u8], out: &mut String) -> Option<()> {
    out.clear();
    let mut i = 0;
    while i < s.len() {
        let p = i + memchr::memchr(b'\\', &s[i..]).unwrap_or(s.len() - i);
        out.push_str(std::str::from_utf8(&s[i..p]).ok()?);
        if p >= s.len() {
            break;
        }
        let c = *s.get(p + 1)?;
        i = p + 2;
        match c {
            b'"' => out.push('"'),
            b'\\' => out.push('\\'),
            b'/' => out.push('/'),
            b'b' => out.push('\u{8}'),
            b'f' => out.push('\u{c}'),
            b'n' => out.push('\n'),
            b'r' => out.push('\r'),
            b't' => out.push('\t'),
            b'u' => {
                let hi = hex4(s.get(i..i + 4)?)?;
                i += 4;
                let code = if (0xD800..0xDC00).contains(&hi) {
                    if s.get(i..i + 2)? != b"\\u" {
                        return None;
                    }
                    let lo = hex4(s.get(i + 2..i + 6)?)?;
                    if !(0xDC00..0xE000).contains(&lo) {
                        return None;
                    }
                    i += 6;
                    0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                } else {
                    hi
                };
                out.push(char::from_u32(code)?);
            }
            _ => return None,
        }
    }
    Some(())
}

fn hex4(h: &[u8]) -> Option<u32> {
    u32::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()
}

enum Builder {
    /// A string column (its values are slices of the block, already checked as UTF-8).
    Utf8(StringBuilder),
    Int64(Int64Builder),
    Float64(Float64Builder),
    Float32(Float32Builder),
}

impl Builder {
    fn new(kind: Kind, rows: usize, bytes: usize) -> Self {
        match kind {
            Kind::Utf8 => Self::Utf8(StringBuilder::with_capacity(rows, bytes)),
            Kind::Int64 => Self::Int64(Int64Builder::with_capacity(rows)),
            Kind::Float64 => Self::Float64(Float64Builder::with_capacity(rows)),
            Kind::Float32 => Self::Float32(Float32Builder::with_capacity(rows)),
        }
    }

    fn append(&mut self, line: &str, slot: Slot, scratch: &mut String) -> Option<()> {
        let bytes = line.as_bytes();
        match self {
            Self::Utf8(b) => match slot {
                Slot::Absent | Slot::Null => b.append_null(),
                Slot::Str(s, e, true) => {
                    unescape(&bytes[s..e], scratch)?;
                    b.append_value(scratch.as_str());
                }
                Slot::Str(s, e, false) | Slot::Num(s, e, _) => b.append_value(line.get(s..e)?),
                Slot::True => b.append_value("true"),
                Slot::False => b.append_value("false"),
            },
            Self::Int64(b) => match slot {
                Slot::Absent | Slot::Null => b.append_null(),
                Slot::Num(s, e, true) => b.append_value(parse_i64(&bytes[s..e])?),
                _ => return None,
            },
            Self::Float64(b) => match slot {
                Slot::Absent | Slot::Null => b.append_null(),
                Slot::Num(s, e, _) => b.append_value(line.get(s..e)?.parse().ok()?),
                _ => return None,
            },
            Self::Float32(b) => match slot {
                Slot::Absent | Slot::Null => b.append_null(),
                Slot::Num(s, e, _) => b.append_value(line.get(s..e)?.parse().ok()?),
                _ => return None,
            },
        }
        Some(())
    }

    /// Bytes of the string values appended (0 for other columns).
    fn value_bytes(&self) -> usize {
        match self {
            Self::Utf8(b) => b.values_slice().len(),
            _ => 0,
        }
    }

    fn finish(self) -> Option<ArrayRef> {
        Some(match self {
            Self::Utf8(mut b) => Arc::new(b.finish()),
            Self::Int64(mut b) => Arc::new(b.finish()),
            Self::Float64(mut b) => Arc::new(b.finish()),
            Self::Float32(mut b) => Arc::new(b.finish()),
        })
    }
}

/// An integer literal (already checked against JSON's grammar) as i64; `None` on overflow.
fn parse_i64(digits: &[u8]) -> Option<i64> {
    let (negative, digits) = match digits.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, digits),
    };
    let mut v: i64 = 0;
    for &d in digits {
        let d = i64::from(d - b'0');
        v = v.checked_mul(10)?;
        v = if negative {
            v.checked_sub(d)?
        } else {
            v.checked_add(d)?
        };
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{Field, Schema};

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("s", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
            Field::new("d", DataType::Float64, true),
            Field::new("f", DataType::Float32, true),
        ]))
    }

    /// The general path's result for the same block.
    fn arrow_json(block: &[u8]) -> Option<RecordBatch> {
        let mut d = arrow::json::ReaderBuilder::new(schema())
            .with_coerce_primitive(true)
            .with_strict_mode(false)
            .build_decoder()
            .ok()?;
        d.decode(block).ok()?;
        d.flush().ok()?
    }

    #[test]
    fn matches_arrow_json_where_it_accepts() {
        let cases: &[&[u8]] = &[
            br#"{"s":"a","n":1,"d":1.5,"f":2.25}"#,
            br#"{"n":-7,"s":"b","x":{"deep":[1,{"y":"}"}]},"d":1e3}"#,
            br#"{"s":12.50,"n":null}"#,
            br#"{"s":true}"#,
            br#"{"s":"esc \"q\" \\ \/ \n \u00e9 \ud83d\ude00"}"#,
            br#"{"s":"x","s":"y"}"#,
            br#"{}"#,
            b"  { \"s\" : \"spaced\" , \"n\" : 3 }  \n\n{\"d\":-0.0}",
            "{\"s\":\"héllo\"}".as_bytes(),
        ];
        for case in cases {
            let mut fast = FlatJsonDecoder::try_new(&schema()).unwrap();
            let got = fast.decode(case);
            assert!(got.is_some(), "declined {}", String::from_utf8_lossy(case));
            assert_eq!(got, arrow_json(case), "{}", String::from_utf8_lossy(case));
        }
    }

    #[test]
    fn declines_what_it_cannot_decode_exactly() {
        let cases: &[&[u8]] = &[
            br#"{"n":"12"}"#,
            br#"{"n":12.7}"#,
            br#"{"n":99999999999999999999}"#,
            br#"{"s":{"nested":1}}"#,
            br#"{"s":[1,2]}"#,
            br#"{"s":"a"} {"s":"b"}"#,
            br#"{"s":"a""#,
            br#"{"s":01}"#,
            br#"{"s":"bad \x"}"#,
            br#"{"s":"\ud800"}"#,
            br#"{"a\"b":1}"#,
            br#"[1,2]"#,
            br#"{"d":true}"#,
            b"{\"s\":\"ctl \x01\"}",
            b"{\"s\":\"\xff\"}",
        ];
        for case in cases {
            let mut fast = FlatJsonDecoder::try_new(&schema()).unwrap();
            assert!(
                fast.decode(case).is_none(),
                "accepted {}",
                String::from_utf8_lossy(case)
            );
        }
    }

    /// The byte-at-a-time scan `string_end` replaced, as the reference.
    fn string_end_bytewise(b: &[u8], mut i: usize) -> Option<(usize, bool)> {
        let mut escaped = false;
        while i < b.len() {
            match b[i] {
                b'"' => return Some((i, escaped)),
                b'\\' => {
                    escaped = true;
                    i += 2;
                }
                c if c < 0x20 => return None,
                _ => i += 1,
            }
        }
        None
    }

    #[test]
    fn string_end_finds_the_first_special_byte_at_every_offset() {
        let fillers: [&[u8]; 3] = [b"a", "é".as_bytes(), b"~"];
        let specials: [&[u8]; 6] = [b"\"", b"\\\"", b"\\\\", b"\x01", b"\x1f", b"\\"];
        for filler in fillers {
            for special in specials {
                for before in 0..20 {
                    for after in 0..12 {
                        let mut line = filler.repeat(before);
                        line.extend_from_slice(special);
                        line.extend_from_slice(&filler.repeat(after));
                        line.extend_from_slice(b"\" tail\"");
                        assert_eq!(
                            string_end(&line, 0),
                            string_end_bytewise(&line, 0),
                            "{}",
                            String::from_utf8_lossy(&line)
                        );
                    }
                }
            }
        }
        assert_eq!(string_end(b"abc", 0), None);
        assert_eq!(string_end(b"abcdefghijklmnop\\", 0), None);
    }

    #[test]
    fn unknown_keys_are_skipped_whatever_the_key_order() {
        // Keys that are not columns, in changing positions, between known ones.
        let block = b"{\"x\":1,\"s\":\"a\",\"y\":\"q\"}\n{\"s\":\"b\",\"x\":2}\n\
                      {\"y\":[1],\"x\":{\"s\":9},\"n\":4}\n{\"x\":1,\"s\":\"c\",\"y\":\"q\"}\n";
        let mut fast = FlatJsonDecoder::try_new(&schema()).unwrap();
        let got = fast.decode(block);
        assert!(got.is_some());
        assert_eq!(got, arrow_json(block));
    }

    #[test]
    fn key_order_changes_between_rows() {
        let block = b"{\"s\":\"a\",\"n\":1}\n{\"n\":2,\"s\":\"b\"}\n{\"d\":3.0}\n";
        let mut fast = FlatJsonDecoder::try_new(&schema()).unwrap();
        assert_eq!(fast.decode(block), arrow_json(block));
    }

    #[test]
    fn one_decoder_decodes_blocks_of_any_size_in_turn() {
        // The second block is larger than the first (the builders start at its size),
        // and a key that is a prefix of the hinted one must not match it.
        let small = b"{\"s\":\"a\",\"n\":1}\n";
        let large = b"{\"s\":\"b\",\"n\":2}\n{\"s\":\"c\",\"n\":3}\n{\"s\":\"d\"}\n{\"ss\":\"e\",\"s\":null}\n";
        let mut fast = FlatJsonDecoder::try_new(&schema()).unwrap();
        for block in [&small[..], &large[..], &small[..]] {
            assert_eq!(fast.decode(block), arrow_json(block));
        }
    }

    #[test]
    fn same_bytes_is_slice_equality() {
        let words: [&[u8]; 8] = [
            b"",
            b"a",
            b"abcdefg",
            b"abcdefgh",
            b"abcdefgi",
            b"abcdefghijklmnop",
            b"bbcdefghijklmnop",
            b"abcdefghijklmnopq",
        ];
        for a in words {
            for b in words {
                assert_eq!(same_bytes(a, b), a == b, "{a:?} {b:?}");
            }
        }
    }

    #[test]
    fn only_primitive_schemas() {
        let nested = Arc::new(Schema::new(vec![Field::new(
            "t",
            DataType::Timestamp(arrow::datatypes::TimeUnit::Millisecond, None),
            true,
        )]));
        assert!(FlatJsonDecoder::try_new(&nested).is_none());
    }
}
