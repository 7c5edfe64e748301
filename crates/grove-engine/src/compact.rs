//! Rows held between the ingest stages, in a compact form: every string column becomes a
//! dictionary of the batch's distinct values (`Dictionary(UInt16, Utf8)`).
//!
//! Most of an ingest's string columns repeat a few values (a browser, a country, a
//! session's city), so a batch of them is held in about a third of the memory: a 2-byte
//! key per row and each distinct value once. Less memory held means less spilled, and
//! fewer fresh pages for the kernel to zero. A column whose values are mostly distinct
//! (a timestamp string) keeps its values as they are, behind keys that number the rows:
//! no hashing, 2 bytes a row. Stage 1 ranks the dictionary values to sort and gathers
//! the sorted rows back into plain strings for the writer.
//!
//! A batch has at most [`MAX_ROWS`] rows, so 16-bit keys always suffice.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use arrow::array::{
    Array, ArrayRef, AsArray, DictionaryArray, RecordBatch, StringArray, StringBuilder,
    UInt16Array, UInt32Array,
};
use arrow::buffer::{Buffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, UInt16Type, UInt32Type};
use datafusion::common::Result;
use hashbrown::HashTable;

/// Rows per compact batch: every key fits in 16 bits.
pub(crate) const MAX_ROWS: usize = 1 << 16;

/// `plain` with the fields for which `as_dictionary(index)` holds typed as dictionaries
/// of strings with `key` keys.
fn with_dictionaries(
    plain: &SchemaRef,
    key: DataType,
    as_dictionary: impl Fn(usize) -> bool,
) -> SchemaRef {
    let fields: Vec<Field> = plain
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let field = f.as_ref().clone();
            if as_dictionary(i) {
                field.with_data_type(DataType::Dictionary(
                    Box::new(key.clone()),
                    Box::new(DataType::Utf8),
                ))
            } else {
                field
            }
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, plain.metadata().clone()))
}

/// Turns batches of one schema into compact batches of another.
#[derive(Debug)]
pub(crate) struct Compactor {
    schema: SchemaRef,
    /// Per column: batches in a row whose values were mostly distinct (0: the last
    /// batch made a dictionary). Such a column is numbered without hashing its values,
    /// and tried again every [`RETRY_EVERY`] batches.
    distinct: Vec<AtomicU32>,
}

/// How often a column whose values were mostly distinct is tried as a dictionary again.
const RETRY_EVERY: u32 = 16;

/// Batches of fewer rows (the rows of a batch that fall in another time chunk) have more
/// distinct values for their size: they do not change a column's state.
const MIN_ROWS: usize = 2048;

impl Compactor {
    /// For batches of `plain` (its string columns are held as dictionaries).
    pub(crate) fn new(plain: &SchemaRef) -> Self {
        Self {
            schema: with_dictionaries(plain, DataType::UInt16, |i| {
                plain.field(i).data_type() == &DataType::Utf8
            }),
            distinct: plain.fields().iter().map(|_| AtomicU32::new(0)).collect(),
        }
    }

    /// The schema of compact batches.
    pub(crate) fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// `batch` (of the plain schema, at most [`MAX_ROWS`] rows) in compact form.
    pub(crate) fn compact(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let rows = batch.num_rows();
        if rows > MAX_ROWS {
            return Err(datafusion::common::DataFusionError::Internal(format!(
                "a batch of {rows} rows is too large to compact"
            )));
        }
        let columns = batch
            .columns()
            .iter()
            .zip(&self.distinct)
            .map(|(column, distinct)| match column.as_string_opt::<i32>() {
                Some(strings) => self.compact_strings(strings, distinct),
                None => Ok(Arc::clone(column)),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(RecordBatch::try_new(Arc::clone(&self.schema), columns)?)
    }

    fn compact_strings(&self, strings: &StringArray, distinct: &AtomicU32) -> Result<ArrayRef> {
        let rows = strings.len();
        let streak = distinct.load(Ordering::Relaxed);
        // Worth a dictionary when at most half the values are distinct.
        let limit = rows / 2;
        if rows < MIN_ROWS {
            let interned = if streak == 0 {
                intern(strings, limit)
            } else {
                None
            };
            return match interned {
                Some(dictionary) => Ok(Arc::new(dictionary)),
                None => numbered(strings),
            };
        }
        if streak > 0 && !streak.is_multiple_of(RETRY_EVERY) {
            distinct.store(streak + 1, Ordering::Relaxed);
            return numbered(strings);
        }
        match intern(strings, limit) {
            Some(dictionary) => {
                distinct.store(0, Ordering::Relaxed);
                Ok(Arc::new(dictionary))
            }
            None => {
                distinct.store(streak + 1, Ordering::Relaxed);
                numbered(strings)
            }
        }
    }
}

/// The values as they are, behind keys that number the rows. A slice of a larger array
/// is copied: it would hold (and count) the whole array's bytes.
fn numbered(strings: &StringArray) -> Result<ArrayRef> {
    let keys = UInt16Array::new(
        (0..strings.len()).map(|i| i as u16).collect(),
        strings.nulls().cloned(),
    );
    let offsets = strings.value_offsets();
    let whole = offsets.first() == Some(&0)
        && offsets.last().map(|&end| end as usize) == Some(strings.value_data().len());
    let values = if whole {
        strings.clone()
    } else {
        strings.iter().collect()
    };
    Ok(Arc::new(DictionaryArray::try_new(keys, Arc::new(values))?))
}

/// `strings` as a dictionary of its distinct values (in order of first appearance), or
/// `None` when it has more than `limit` of them.
fn interned_values(strings: &StringArray, limit: usize) -> Option<(Vec<u16>, Vec<i32>, Vec<u8>)> {
    let hasher = foldhash::fast::FixedState::default();
    let hash = |v: &[u8]| std::hash::BuildHasher::hash_one(&hasher, v);
    let data = strings.value_data();
    let offsets = strings.value_offsets();
    let nulls = strings.nulls();
    // (hash, key) of each distinct value.
    let mut table: HashTable<(u64, u16)> = HashTable::with_capacity(64);
    let mut bytes: Vec<u8> = Vec::new();
    let mut ends: Vec<i32> = vec![0];
    let mut keys: Vec<u16> = Vec::with_capacity(strings.len());
    for i in 0..strings.len() {
        if nulls.is_some_and(|n| n.is_null(i)) {
            keys.push(0);
            continue;
        }
        let value = &data[offsets[i] as usize..offsets[i + 1] as usize];
        let h = hash(value);
        let found = table.find(h, |&(vh, k)| {
            vh == h && bytes[ends[k as usize] as usize..ends[k as usize + 1] as usize] == *value
        });
        let key = match found {
            Some(&(_, k)) => k,
            None => {
                let k = ends.len() - 1;
                if k >= limit {
                    return None;
                }
                bytes.extend_from_slice(value);
                // At most the column's own bytes, whose offsets are i32 too.
                ends.push(bytes.len() as i32);
                // k < limit <= MAX_ROWS / 2: fits.
                table.insert_unique(h, (h, k as u16), |&(vh, _)| vh);
                k as u16
            }
        };
        keys.push(key);
    }
    Some((keys, ends, bytes))
}

/// [`interned_values`] as a dictionary array.
fn intern(strings: &StringArray, limit: usize) -> Option<DictionaryArray<UInt16Type>> {
    let (keys, ends, bytes) = interned_values(strings, limit)?;
    // The values are whole UTF-8 strings copied from a string array: valid.
    let values = StringArray::try_new(
        OffsetBuffer::new(ScalarBuffer::from(ends)),
        Buffer::from_vec(bytes),
        None,
    )
    .ok()?;
    let keys = UInt16Array::new(keys.into(), strings.nulls().cloned());
    DictionaryArray::try_new(keys, Arc::new(values)).ok()
}

/// A string column of a chunk: plain, or compact.
enum Strings<'a> {
    Plain(&'a StringArray),
    Compact(
        &'a [u16],
        &'a StringArray,
        Option<&'a arrow::buffer::NullBuffer>,
    ),
}

impl<'a> Strings<'a> {
    fn of(array: &'a dyn Array) -> Option<Self> {
        if let Some(plain) = array.as_string_opt::<i32>() {
            return Some(Self::Plain(plain));
        }
        let dictionary = array.as_dictionary_opt::<UInt16Type>()?;
        let values = dictionary.values().as_string_opt::<i32>()?;
        Some(Self::Compact(
            dictionary.keys().values(),
            values,
            dictionary.keys().nulls(),
        ))
    }

    fn value(&self, row: usize) -> Option<&'a str> {
        match self {
            Self::Plain(a) => a.is_valid(row).then(|| a.value(row)),
            Self::Compact(keys, values, nulls) => {
                if nulls.is_some_and(|n| n.is_null(row)) {
                    return None;
                }
                let key = keys[row] as usize;
                values.is_valid(key).then(|| values.value(key))
            }
        }
    }
}

/// The rows `picks` ((array, row) pairs) of a column split over `arrays`, as a column of
/// type `plain`: a string column (plain or compact) becomes plain strings, copied once;
/// any other column is interleaved.
pub(crate) fn gather(
    arrays: &[&dyn Array],
    picks: &[(usize, usize)],
    plain: &DataType,
) -> Result<ArrayRef> {
    let strings: Option<Vec<Strings>> = match plain {
        DataType::Utf8 => arrays.iter().map(|a| Strings::of(*a)).collect(),
        _ => None,
    };
    let Some(strings) = strings.filter(|s| !s.is_empty()) else {
        return Ok(arrow::compute::interleave(arrays, picks)?);
    };
    let mut bytes = 0usize;
    for &(a, r) in picks {
        bytes += strings[a].value(r).map_or(0, str::len);
    }
    let mut out = StringBuilder::with_capacity(picks.len(), bytes);
    for &(a, r) in picks {
        out.append_option(strings[a].value(r));
    }
    Ok(Arc::new(out.finish()))
}

/// A string column of a chunk as one dictionary: the values of every batch's dictionary
/// (of every row, for a plain batch) one after the other, without looking for
/// duplicates, and where each batch's values start. Gathering rows from it copies a key
/// per row instead of the string (the Parquet writer interns the values either way).
pub(crate) struct ChunkDictionary {
    values: ArrayRef,
    starts: Vec<u32>,
}

/// The chunk dictionaries of a time chunk split into range buckets, made once and shared
/// by its buckets (each would otherwise copy every batch's values into its own).
pub(crate) struct SharedDictionaries {
    /// The schema of rows gathered with them.
    pub(crate) schema: SchemaRef,
    /// Per column, as [`ChunkDictionary::for_columns`] makes them.
    pub(crate) columns: Vec<Option<ChunkDictionary>>,
}

impl ChunkDictionary {
    /// This dictionary for some of the batches it was made from, in the given order
    /// (`which[i]` is the index of the `i`-th among them): the same values, not copied.
    pub(crate) fn for_batches(&self, which: &[usize]) -> Self {
        Self {
            values: Arc::clone(&self.values),
            starts: which.iter().map(|&i| self.starts[i]).collect(),
        }
    }

    /// The dictionary of every string column of `plain` split over `batches` (plain or
    /// compact; `None` for other columns), and the schema of rows gathered with them
    /// (those columns as `Dictionary(UInt32, Utf8)`).
    pub(crate) fn for_columns(
        batches: &[RecordBatch],
        plain: &SchemaRef,
    ) -> Result<(SchemaRef, Vec<Option<Self>>)> {
        let mut dictionaries = Vec::with_capacity(plain.fields().len());
        for (c, field) in plain.fields().iter().enumerate() {
            let arrays: Vec<&dyn Array> = batches.iter().map(|b| b.column(c).as_ref()).collect();
            dictionaries.push(Self::of_column(field, &arrays)?);
        }
        Ok((Self::gathered_schema(plain, &dictionaries), dictionaries))
    }

    /// The dictionary of the column `field` split over `arrays`: `None` but for strings.
    fn of_column(field: &Field, arrays: &[&dyn Array]) -> Result<Option<Self>> {
        match field.data_type() {
            DataType::Utf8 => Self::try_new(arrays),
            _ => Ok(None),
        }
    }

    /// The schema of rows of `plain` gathered with `dictionaries` (one per column).
    fn gathered_schema(plain: &SchemaRef, dictionaries: &[Option<Self>]) -> SchemaRef {
        with_dictionaries(plain, DataType::UInt32, |i| dictionaries[i].is_some())
    }

    /// [`ChunkDictionary::for_columns`] over `batches` (the columns of each batch), whose
    /// string columns then give their strings up: each keeps only what
    /// [`ChunkDictionary::gather`] needs (a compact column its keys, shared; a plain one
    /// its row numbers). One column at a time, so that the chunk's strings are held
    /// once, in the dictionaries, and never twice (only one column's while it is copied).
    pub(crate) fn for_columns_moving(
        batches: &mut [Vec<ArrayRef>],
        plain: &SchemaRef,
    ) -> Result<(SchemaRef, Vec<Option<Self>>)> {
        let mut dictionaries = Vec::with_capacity(plain.fields().len());
        for (c, field) in plain.fields().iter().enumerate() {
            let arrays: Vec<&dyn Array> = batches.iter().map(|b| b[c].as_ref()).collect();
            let dictionary = Self::of_column(field, &arrays)?;
            if dictionary.is_some() {
                for batch in batches.iter_mut() {
                    if let Some(keys) = keys_only(&batch[c]) {
                        batch[c] = keys;
                    }
                }
            }
            dictionaries.push(dictionary);
        }
        Ok((Self::gathered_schema(plain, &dictionaries), dictionaries))
    }

    /// The dictionary of a string column split over `arrays` (plain or compact); `None`
    /// when a column is of another type, or its values would not fit one string array.
    pub(crate) fn try_new(arrays: &[&dyn Array]) -> Result<Option<Self>> {
        let mut parts: Vec<&dyn Array> = Vec::with_capacity(arrays.len());
        let mut starts = Vec::with_capacity(arrays.len());
        let (mut count, mut bytes) = (0usize, 0usize);
        for array in arrays {
            let values: &StringArray = match Strings::of(*array) {
                Some(Strings::Plain(a)) => a,
                Some(Strings::Compact(_, values, _)) => values,
                None => return Ok(None),
            };
            starts.push(count as u32);
            count += values.len();
            let offsets = values.value_offsets();
            bytes += (offsets[values.len()] - offsets[0]) as usize;
            parts.push(values);
        }
        if count > u32::MAX as usize || bytes > i32::MAX as usize {
            return Ok(None);
        }
        Ok(Some(Self {
            values: arrow::compute::concat(&parts)?,
            starts,
        }))
    }

    /// The rows `picks` ((array, row) pairs) of the column, whose arrays are `arrays`
    /// (the ones this dictionary was made from), as a dictionary array.
    pub(crate) fn gather(
        &self,
        arrays: &[&dyn Array],
        picks: &[(usize, usize)],
    ) -> Result<ArrayRef> {
        let sources: Vec<KeySource> = arrays
            .iter()
            .map(|a| KeySource::of(*a))
            .collect::<Option<_>>()
            .ok_or_else(|| {
                datafusion::common::DataFusionError::Internal(
                    "a chunk dictionary gathers string columns only".into(),
                )
            })?;
        let mut keys: Vec<u32> = Vec::with_capacity(picks.len());
        let mut nulls = arrow::array::NullBufferBuilder::new(picks.len());
        for &(a, r) in picks {
            let key = sources[a].key(r);
            match key {
                Some(k) => {
                    keys.push(self.starts[a] + k);
                    nulls.append_non_null();
                }
                None => {
                    keys.push(0);
                    nulls.append_null();
                }
            }
        }
        let keys = arrow::array::UInt32Array::new(keys.into(), nulls.finish());
        Ok(Arc::new(DictionaryArray::try_new(
            keys,
            Arc::clone(&self.values),
        )?))
    }
}

/// A string column without its strings, for [`ChunkDictionary::gather`]: a compact
/// column's keys (the same buffer), or a plain column's row numbers (its values are
/// every row's); `None` for any other column.
fn keys_only(column: &ArrayRef) -> Option<ArrayRef> {
    if let Some(dictionary) = column.as_dictionary_opt::<UInt16Type>() {
        return Some(Arc::new(dictionary.keys().clone()));
    }
    let plain = column.as_string_opt::<i32>()?;
    let rows = u32::try_from(plain.len()).ok()?;
    Some(Arc::new(UInt32Array::new(
        ScalarBuffer::from_iter(0..rows),
        plain.nulls().cloned(),
    )))
}

/// Where a row of one of a chunk dictionary's arrays points in the batch's values.
enum KeySource<'a> {
    Strings(Strings<'a>),
    /// A compact column's keys, its strings gone ([`keys_only`]).
    Keys16(&'a UInt16Array),
    /// A plain column's row numbers, its strings gone.
    Keys32(&'a UInt32Array),
}

impl<'a> KeySource<'a> {
    fn of(array: &'a dyn Array) -> Option<Self> {
        if let Some(keys) = array.as_primitive_opt::<UInt16Type>() {
            return Some(Self::Keys16(keys));
        }
        if let Some(keys) = array.as_primitive_opt::<UInt32Type>() {
            return Some(Self::Keys32(keys));
        }
        Strings::of(array).map(Self::Strings)
    }

    /// The key of row `r` in its batch's values; `None` for NULL.
    fn key(&self, r: usize) -> Option<u32> {
        match self {
            Self::Strings(Strings::Plain(values)) => values.is_valid(r).then_some(r as u32),
            Self::Strings(Strings::Compact(k, _, n)) => {
                n.is_none_or(|n| n.is_valid(r)).then(|| u32::from(k[r]))
            }
            Self::Keys16(k) => k.is_valid(r).then(|| u32::from(k.value(r))),
            Self::Keys32(k) => k.is_valid(r).then(|| k.value(r)),
        }
    }
}

/// `batch` with its compact columns plain again (of `plain`, the schema it was compacted
/// from).
pub(crate) fn expand(batch: &RecordBatch, plain: &SchemaRef) -> Result<RecordBatch> {
    let columns = batch
        .columns()
        .iter()
        .zip(plain.fields())
        .map(|(column, field)| {
            if column.data_type() == field.data_type() {
                Ok(Arc::clone(column))
            } else {
                Ok(arrow::compute::cast(column, field.data_type())?)
            }
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(Arc::clone(plain), columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;

    /// The type a string column is held as.
    fn dictionary_type() -> DataType {
        DataType::Dictionary(Box::new(DataType::UInt16), Box::new(DataType::Utf8))
    }

    fn batch(schema: &SchemaRef, names: Vec<Option<String>>) -> RecordBatch {
        let n = names.len() as i64;
        RecordBatch::try_new(
            Arc::clone(schema),
            vec![
                Arc::new(StringArray::from(names)),
                Arc::new(Int64Array::from_iter_values(0..n)),
            ],
        )
        .unwrap()
    }

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("s", DataType::Utf8, true),
            Field::new("n", DataType::Int64, false),
        ]))
    }

    #[test]
    fn repeated_strings_become_a_dictionary_and_gather_back_plain() {
        let schema = schema();
        let compactor = Compactor::new(&schema);
        let values: Vec<Option<String>> = (0..1000)
            .map(|i| (i % 7 != 0).then(|| ["Chrome", "Firefox", "Safari"][i % 3].to_string()))
            .collect();
        let plain = batch(&schema, values.clone());
        let compact = compactor.compact(&plain).unwrap();
        assert_eq!(compact.schema().field(0).data_type(), &dictionary_type());
        let dictionary = compact.column(0).as_dictionary::<UInt16Type>();
        assert_eq!(dictionary.values().len(), 3, "one entry per distinct value");
        assert!(compact.get_array_memory_size() < plain.get_array_memory_size());
        // Gather reverses the rows, from the compact batch and a plain copy alike.
        let picks: Vec<(usize, usize)> = (0..1000).rev().map(|r| (r % 2, r)).collect();
        let gathered = gather(
            &[compact.column(0).as_ref(), plain.column(0).as_ref()],
            &picks,
            &DataType::Utf8,
        )
        .unwrap();
        let expected: StringArray = values.iter().rev().cloned().collect();
        assert_eq!(gathered.as_string::<i32>(), &expected);
        assert_eq!(expand(&compact, &schema).unwrap(), plain);
    }

    #[test]
    fn distinct_strings_keep_their_values_and_are_probed_next_time() {
        let schema = schema();
        let compactor = Compactor::new(&schema);
        let distinct = |from: usize| {
            batch(
                &schema,
                (from..from + 4096)
                    .map(|i| Some(format!("row {i}")))
                    .collect(),
            )
        };
        for from in [0, 4096] {
            let plain = distinct(from);
            let compact = compactor.compact(&plain).unwrap();
            let dictionary = compact.column(0).as_dictionary::<UInt16Type>();
            assert_eq!(dictionary.values().as_ref(), plain.column(0).as_ref());
            assert!(compactor.distinct[0].load(Ordering::Relaxed) > 0);
            assert_eq!(expand(&compact, &schema).unwrap(), plain);
        }
        // Repeated values again: numbered without a look until the column is tried
        // again, then a dictionary again.
        let repeated = batch(
            &schema,
            (0..4096).map(|i| Some(format!("{}", i % 5))).collect(),
        );
        let dictionary_values = |b: &RecordBatch| {
            compactor
                .compact(b)
                .unwrap()
                .column(0)
                .as_dictionary::<UInt16Type>()
                .values()
                .len()
        };
        for _ in 2..RETRY_EVERY {
            assert_eq!(dictionary_values(&repeated), 4096);
        }
        assert_eq!(dictionary_values(&repeated), 5);
        assert_eq!(compactor.distinct[0].load(Ordering::Relaxed), 0);
        // A few rows leave the column's state alone.
        let few = batch(&schema, (0..10).map(|i| Some(format!("{i}"))).collect());
        assert_eq!(dictionary_values(&few), 10);
        assert_eq!(dictionary_values(&repeated), 5);
    }

    /// 3,000 rows of 13 values with a NULL every `null_every` rows, as a plain batch and
    /// compacted.
    fn plain_and_compact(null_every: usize) -> (Vec<Option<String>>, RecordBatch, RecordBatch) {
        let schema = schema();
        let values: Vec<Option<String>> = (0..3000)
            .map(|i| (i % null_every != 0).then(|| format!("v{}", i % 13)))
            .collect();
        let plain = batch(&schema, values.clone());
        let compact = Compactor::new(&schema).compact(&plain).unwrap();
        (values, plain, compact)
    }

    /// Every row of the two batches in reverse, alternating between them.
    fn reversed_picks() -> Vec<(usize, usize)> {
        (0..3000).rev().map(|r| (r % 2, r)).collect()
    }

    #[test]
    fn a_chunk_dictionary_gathers_keys_that_read_as_the_strings() {
        let (values, plain, compact) = plain_and_compact(11);
        let picks = reversed_picks();
        let arrays = [compact.column(0).as_ref(), plain.column(0).as_ref()];
        let dictionary = ChunkDictionary::try_new(&arrays).unwrap().unwrap();
        let gathered = dictionary.gather(&arrays, &picks).unwrap();
        let as_plain = arrow::compute::cast(&gathered, &DataType::Utf8).unwrap();
        let expected: StringArray = values.iter().rev().cloned().collect();
        assert_eq!(as_plain.as_string::<i32>(), &expected);
        assert_eq!(gathered.null_count(), expected.null_count());
        // Not a string column: no dictionary.
        let numbers = [plain.column(1).as_ref()];
        assert!(ChunkDictionary::try_new(&numbers).unwrap().is_none());
    }

    #[test]
    fn moving_strings_into_the_dictionary_leaves_keys_that_gather_the_same() {
        let schema = schema();
        let (_, plain, compact) = plain_and_compact(7);
        let picks = reversed_picks();
        let arrays = [compact.column(0).as_ref(), plain.column(0).as_ref()];
        let kept = ChunkDictionary::try_new(&arrays).unwrap().unwrap();
        let expected = kept.gather(&arrays, &picks).unwrap();

        let mut batches = vec![compact.columns().to_vec(), plain.columns().to_vec()];
        let (keyed, dictionaries) =
            ChunkDictionary::for_columns_moving(&mut batches, &schema).unwrap();
        assert_eq!(keyed.field(0).data_type(), expected.data_type());
        // The strings are gone from the batches: the compact column keeps its keys (the
        // same buffer), the plain one its row numbers; other columns are untouched.
        assert_eq!(batches[0][0].data_type(), &DataType::UInt16);
        assert_eq!(batches[1][0].data_type(), &DataType::UInt32);
        assert!(Arc::ptr_eq(&batches[1][1], plain.column(1)));
        let moved: Vec<&dyn Array> = batches.iter().map(|b| b[0].as_ref()).collect();
        let dictionary = dictionaries[0].as_ref().unwrap();
        assert_eq!(
            dictionary.gather(&moved, &picks).unwrap().as_ref(),
            expected.as_ref()
        );
        assert!(dictionaries[1].is_none());
    }

    #[test]
    fn too_many_rows_is_an_error_not_a_wrong_key() {
        let schema = schema();
        let rows = MAX_ROWS + 1;
        let big = batch(&schema, (0..rows).map(|_| Some("x".to_string())).collect());
        assert!(Compactor::new(&schema).compact(&big).is_err());
        let most = big.slice(0, MAX_ROWS);
        let compact = Compactor::new(&schema).compact(&most).unwrap();
        assert_eq!(compact.num_rows(), MAX_ROWS);
        // Distinct values of a slice: numbered, holding the slice's bytes only.
        let distinct = batch(
            &schema,
            (0..rows).map(|i| Some(format!("{i:06}"))).collect(),
        );
        let part = distinct.slice(1, MAX_ROWS);
        let compact = Compactor::new(&schema).compact(&part).unwrap();
        let values = Arc::clone(compact.column(0).as_dictionary::<UInt16Type>().values());
        assert_eq!(values.as_string::<i32>().value_data().len(), 6 * MAX_ROWS);
        assert_eq!(expand(&compact, &schema).unwrap(), part);
    }
}
