//! Sorting a time chunk by [CLUSTERED BY..., `__time`]: the order of its rows (packed
//! integer keys, or Arrow's row format), then the rows gathered in that order, batch by
//! batch, strings as keys into one dictionary of the chunk.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, UInt32Array};
use arrow::compute::SortOptions;
use arrow::datatypes::{DataType, Schema, SchemaRef};
use arrow::row::{RowConverter, SortField};
use datafusion::common::{DataFusionError, Result};
use datafusion::physical_expr::{LexOrdering, PhysicalSortExpr};
use datafusion::physical_plan::expressions::Column;

use crate::compact::{self, ChunkDictionary, SharedDictionaries, expand};
use crate::parquet_writer::{ThreadShare, on_threads};
use crate::route::{Routed, slices};

/// How rows are ordered inside a time chunk.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct ChunkOrder {
    /// Column indices of the sort key: [CLUSTERED BY..., __time].
    pub(crate) columns: Vec<usize>,
}

impl ChunkOrder {
    /// Bytes per row an in-memory sort of a chunk needs on top of the rows, while it sorts
    /// (`.0`: each key column's rank and the packed key) and while the sorted chunk is
    /// served (`.1`: its order and each row's location, and a row number for every plain
    /// string column of `rows`, whose strings move into the chunk's dictionaries).
    pub(crate) fn sort_bytes_per_row(&self, rows: &Schema) -> (usize, usize) {
        let plain_strings = rows
            .fields()
            .iter()
            .filter(|f| {
                matches!(
                    f.data_type(),
                    DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
                )
            })
            .count();
        (8 * self.columns.len() + 16, 4 + 8 + 4 * plain_strings)
    }

    pub(crate) fn lex(&self, schema: &SchemaRef) -> Result<LexOrdering> {
        let exprs = self.columns.iter().map(|&i| {
            PhysicalSortExpr::new(
                Arc::new(Column::new(schema.field(i).name(), i)),
                SORT_OPTIONS,
            )
        });
        LexOrdering::new(exprs)
            .ok_or_else(|| DataFusionError::Internal("empty chunk sort key".into()))
    }

    /// The sorted order of the rows of `batches` (all non-empty, `total` rows in all).
    /// Equal keys keep their input order, so the same rows always sort the same way.
    ///
    /// Key columns of strings, integers and times become one integer per row
    /// ([`packed_keys`]); other key columns become Arrow's row format, whose rows compare
    /// as plain bytes: one comparison per pair instead of one per key column through a
    /// type dispatch.
    fn sort_indices(&self, batches: &[RecordBatch], total: usize) -> Result<UInt32Array> {
        let n = u32::try_from(total).map_err(|_| {
            DataFusionError::Execution(format!("a time chunk of {total} rows is too large to sort"))
        })?;
        if let Some(order) = packed_keys(batches, &self.columns, total) {
            return Ok(UInt32Array::from(order));
        }
        self.row_format_order(batches, n)
    }

    /// [`Self::sort_indices`] through Arrow's row format, for any key types.
    fn row_format_order(&self, batches: &[RecordBatch], n: u32) -> Result<UInt32Array> {
        let Some(first) = batches.first() else {
            return Ok(UInt32Array::from(Vec::<u32>::new()));
        };
        let mut fields = Vec::with_capacity(self.columns.len());
        let mut keys = Vec::with_capacity(self.columns.len());
        for &i in &self.columns {
            let arrays: Vec<&dyn arrow::array::Array> =
                batches.iter().map(|b| b.column(i).as_ref()).collect();
            keys.push(arrow::compute::concat(&arrays)?);
            fields.push(SortField::new_with_options(
                first.schema().field(i).data_type().clone(),
                SORT_OPTIONS,
            ));
        }
        let rows = RowConverter::new(fields)?.convert_columns(&keys)?;
        drop(keys);
        let mut order: Vec<u32> = (0..n).collect();
        order.sort_unstable_by(|&a, &b| {
            rows.row(a as usize)
                .cmp(&rows.row(b as usize))
                .then(a.cmp(&b))
        });
        Ok(UInt32Array::from(order))
    }

    /// The rows of `pieces` in sorted order, as batches of at most `rows` rows. Only the
    /// key columns are copied to sort; each output batch is gathered from the inputs, so
    /// sorting needs little memory beyond the input itself.
    ///
    /// The rows come out as `plain` (the schema the pieces were compacted from), or,
    /// with `as_keys`, with each string column as keys into one dictionary of the chunk
    /// ([`ChunkDictionary`]): what the segment writer takes without copying strings.
    pub(crate) fn sorted_slices(
        &self,
        pieces: &[Routed],
        rows: usize,
        plain: &SchemaRef,
        as_keys: bool,
        shared: Option<&SharedDictionaries>,
    ) -> Result<SortedSlices> {
        let pieces: Vec<&Routed> = pieces.iter().filter(|p| p.num_rows() > 0).collect();
        let total: usize = pieces.iter().map(|p| p.num_rows()).sum();
        let keys = pieces
            .iter()
            .map(|p| p.project(&self.columns))
            .collect::<Result<Vec<_>>>()?;
        let order = ChunkOrder {
            columns: (0..self.columns.len()).collect(),
        }
        .sort_indices(&keys, total)?;
        drop(keys);
        if is_identity(&order) {
            // Already in order (time-ordered input, say): the rows as they are.
            let mut ready = Vec::new();
            for piece in pieces {
                ready.extend(slices(&expand(&piece.materialize()?, plain)?, rows));
            }
            return Ok(SortedSlices {
                ready: ready.into_iter(),
                schema: Arc::clone(plain),
                dictionaries: Vec::new(),
                batches: Vec::new(),
                locate: Vec::new(),
                order: UInt32Array::from(Vec::<u32>::new()),
                next: 0,
                rows,
                threads: None,
            });
        }
        // Global row number -> (batch, row), in 32 bits each as the order's row numbers.
        let too_many = || DataFusionError::Execution("a time chunk has too many rows".into());
        let mut locate: Vec<(u32, u32)> = Vec::with_capacity(total);
        for (b, piece) in pieces.iter().enumerate() {
            let b = u32::try_from(b).map_err(|_| too_many())?;
            match &piece.rows {
                None => {
                    let n = u32::try_from(piece.batch.num_rows()).map_err(|_| too_many())?;
                    locate.extend((0..n).map(|r| (b, r)));
                }
                Some(rows) => locate.extend(rows.values().iter().map(|&r| (b, r))),
            }
        }
        let sources: Option<Vec<usize>> = pieces.iter().map(|p| p.source).collect();
        let mut batches: Vec<Vec<ArrayRef>> = pieces
            .into_iter()
            .map(|p| p.batch.columns().to_vec())
            .collect();
        let (schema, dictionaries) = match (as_keys, shared, sources) {
            (false, ..) => (Arc::clone(plain), Vec::new()),
            // A range bucket: its time chunk's dictionaries, made once for all buckets.
            (true, Some(shared), Some(sources)) => (
                Arc::clone(&shared.schema),
                shared
                    .columns
                    .iter()
                    .map(|d| d.as_ref().map(|d| d.for_batches(&sources)))
                    .collect(),
            ),
            // The chunk's strings move into its dictionaries: the batches keep only
            // their keys (the caller's pieces are dropped after the sort).
            (true, ..) => ChunkDictionary::for_columns_moving(&mut batches, plain)?,
        };
        Ok(SortedSlices {
            ready: Vec::new().into_iter(),
            schema,
            dictionaries,
            batches,
            locate,
            order,
            next: 0,
            rows: rows.max(1),
            threads: None,
        })
    }
}

/// The sorted order of `total` rows by the key `columns`, as row numbers, when every key
/// column is a string, a 64-bit integer or a time; `None` otherwise or when the packed
/// key would not fit in 127 bits.
///
/// Each column becomes an unsigned integer that sorts as the column does, NULL lowest
/// (Druid's nulls first): a string's dense rank among the column's distinct values, an
/// integer's offset from the column's minimum. Packed from the first key column down to
/// the row number, one integer per row sorts in the key's order with ties in input
/// order, and compares in one instruction where a row of the row format needs `memcmp`.
fn packed_keys(batches: &[RecordBatch], columns: &[usize], total: usize) -> Option<Vec<u32>> {
    let mut parts: Vec<(Vec<u64>, u32)> = Vec::with_capacity(columns.len());
    for &c in columns {
        let arrays: Vec<&arrow::array::ArrayRef> = batches.iter().map(|b| b.column(c)).collect();
        parts.push(string_ranks(&arrays, total).or_else(|| integer_ranks(&arrays, total))?);
    }
    let row_bits = bits_for(total.saturating_sub(1) as u128);
    let key_bits: u32 = parts.iter().map(|(_, bits)| bits).sum::<u32>() + row_bits;
    // Strictly below the width: no shift reaches it.
    if key_bits < 64 {
        Some(sort_packed::<u64>(&parts, row_bits, total))
    } else if key_bits < 128 {
        Some(sort_packed::<u128>(&parts, row_bits, total))
    } else {
        None
    }
}

/// Bits that hold every value up to `max`.
fn bits_for(max: u128) -> u32 {
    128 - max.leading_zeros()
}

/// Packs `parts` ((values, bits) per key column) and the row number into one `T` per
/// row, sorts them, and returns the row numbers.
fn sort_packed<T>(parts: &[(Vec<u64>, u32)], row_bits: u32, total: usize) -> Vec<u32>
where
    T: Copy + Ord + From<u64> + TryInto<u32>,
    T: std::ops::Shl<u32, Output = T> + std::ops::BitOr<Output = T> + std::ops::BitAnd<Output = T>,
{
    let mut keys: Vec<T> = vec![T::from(0); total];
    for (values, bits) in parts {
        for (key, &v) in keys.iter_mut().zip(values) {
            *key = (*key << *bits) | T::from(v);
        }
    }
    for (row, key) in keys.iter_mut().enumerate() {
        *key = (*key << row_bits) | T::from(row as u64);
    }
    keys.sort_unstable();
    // Row numbers fit in 32 bits (the caller checked), so the mask does too.
    let mask = T::from((1u64 << row_bits) - 1);
    keys.into_iter()
        .map(|k| (k & mask).try_into().unwrap_or(0))
        .collect()
}

/// The dense rank (1-based, NULL 0) of every value of a string column split over
/// `arrays`, with the bits the ranks need; `None` when the column is not a string.
fn string_ranks(arrays: &[&arrow::array::ArrayRef], total: usize) -> Option<(Vec<u64>, u32)> {
    use arrow::array::AsArray;
    use arrow::datatypes::DataType;
    let mut ranks = Ranks {
        ids: datafusion::common::HashMap::new(),
        distinct: Vec::new(),
        rows: Vec::with_capacity(total),
    };
    for a in arrays {
        match a.data_type() {
            DataType::Utf8 => ranks.extend(a.as_string::<i32>().iter()),
            DataType::LargeUtf8 => ranks.extend(a.as_string::<i64>().iter()),
            DataType::Utf8View => ranks.extend(a.as_string_view().iter()),
            DataType::Dictionary(key, value)
                if **key == DataType::UInt16 && **value == DataType::Utf8 =>
            {
                // Each distinct value is looked up once, each row maps its key.
                let dictionary = a.as_dictionary::<arrow::datatypes::UInt16Type>();
                let values = dictionary.values().as_string::<i32>();
                let ids: Vec<u32> = values.iter().map(|v| ranks.id(v)).collect();
                let keys = dictionary.keys();
                ranks
                    .rows
                    .extend(keys.values().iter().enumerate().map(|(i, &k)| {
                        if arrow::array::Array::is_null(keys, i) {
                            0
                        } else {
                            ids[k as usize]
                        }
                    }));
            }
            _ => return None,
        }
    }
    Some(ranks.finish())
}

/// Distinct strings numbered as they are first seen (from 1; NULL is 0).
struct Ranks<'a> {
    ids: datafusion::common::HashMap<&'a str, u32>,
    distinct: Vec<&'a str>,
    /// The number of each row's value.
    rows: Vec<u32>,
}

impl<'a> Ranks<'a> {
    fn extend(&mut self, values: impl Iterator<Item = Option<&'a str>>) {
        for value in values {
            let id = self.id(value);
            self.rows.push(id);
        }
    }

    /// The number of `value`.
    fn id(&mut self, value: Option<&'a str>) -> u32 {
        match value {
            None => 0,
            Some(v) => *self.ids.entry(v).or_insert_with(|| {
                self.distinct.push(v);
                self.distinct.len() as u32
            }),
        }
    }

    /// Each row's rank among the distinct values in byte order, and the bits it needs.
    fn finish(self) -> (Vec<u64>, u32) {
        let mut by_value: Vec<usize> = (0..self.distinct.len()).collect();
        by_value.sort_unstable_by_key(|&i| self.distinct[i].as_bytes());
        // rank_of[id]: NULL (id 0) ranks 0, the smallest value 1.
        let mut rank_of = vec![0u64; self.distinct.len() + 1];
        for (rank, &i) in by_value.iter().enumerate() {
            rank_of[i + 1] = rank as u64 + 1;
        }
        let ranks = self.rows.iter().map(|&id| rank_of[id as usize]).collect();
        (ranks, bits_for(self.distinct.len() as u128))
    }
}

/// Every value of a 64-bit integer or time column split over `arrays` as its offset from
/// the column's minimum plus one (NULL 0), with the bits they need; `None` when the
/// column is of another type or its values span more than 64 bits.
fn integer_ranks(arrays: &[&arrow::array::ArrayRef], total: usize) -> Option<(Vec<u64>, u32)> {
    use arrow::array::Array;
    let columns: Vec<(&[i64], Option<&arrow::buffer::NullBuffer>)> = arrays
        .iter()
        .map(|a| as_i64_values(a).map(|v| (v, a.nulls())))
        .collect::<Option<_>>()?;
    let bounds = columns
        .iter()
        .flat_map(|(values, nulls)| {
            values
                .iter()
                .enumerate()
                .filter(move |(i, _)| nulls.is_none_or(|n| n.is_valid(*i)))
                .map(|(_, &v)| v)
        })
        .fold(None, |acc: Option<(i64, i64)>, v| {
            Some(acc.map_or((v, v), |(lo, hi)| (lo.min(v), hi.max(v))))
        });
    let Some((min, max)) = bounds else {
        return Some((vec![0; total], 0)); // every value is NULL
    };
    let top = u64::try_from(i128::from(max) - i128::from(min) + 1).ok()?;
    let mut ranks = Vec::with_capacity(total);
    for (values, nulls) in &columns {
        ranks.extend(values.iter().enumerate().map(|(i, &v)| {
            if nulls.is_some_and(|n| n.is_null(i)) {
                0
            } else {
                // v >= min, so the offset fits (top did).
                (i128::from(v) - i128::from(min)) as u64 + 1
            }
        }));
    }
    Some((ranks, bits_for(u128::from(top))))
}

/// The values of a 64-bit integer or timestamp column.
fn as_i64_values(array: &arrow::array::ArrayRef) -> Option<&[i64]> {
    use arrow::array::AsArray;
    use arrow::datatypes::{
        DataType, Int64Type, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
        TimestampNanosecondType, TimestampSecondType,
    };
    Some(match array.data_type() {
        DataType::Int64 => array.as_primitive::<Int64Type>().values(),
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            array.as_primitive::<TimestampMillisecondType>().values()
        }
        DataType::Timestamp(TimeUnit::Second, _) => {
            array.as_primitive::<TimestampSecondType>().values()
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            array.as_primitive::<TimestampMicrosecondType>().values()
        }
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            array.as_primitive::<TimestampNanosecondType>().values()
        }
        _ => return None,
    })
}

/// Sorted output of [`ChunkOrder::sorted_slices`], one batch at a time.
pub(crate) struct SortedSlices {
    /// Batches to hand out as they are (when the input was already sorted).
    ready: std::vec::IntoIter<RecordBatch>,
    /// Of the batches handed out.
    schema: SchemaRef,
    /// Per column: the chunk's dictionary its rows are gathered as keys into (none:
    /// gathered as plain values).
    dictionaries: Vec<Option<ChunkDictionary>>,
    /// The columns of each input batch (a string column gathered as keys may hold only
    /// its keys: see [`ChunkDictionary::for_columns_moving`]).
    batches: Vec<Vec<ArrayRef>>,
    locate: Vec<(u32, u32)>,
    order: UInt32Array,
    next: usize,
    rows: usize,
    /// Threads to gather on (one when `None`).
    threads: Option<ThreadShare>,
}

impl Iterator for SortedSlices {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(batch) = self.ready.next() {
            return Some(Ok(batch));
        }
        if self.next >= self.order.len() {
            return None;
        }
        let end = (self.next + self.rows).min(self.order.len());
        let picks: Vec<(usize, usize)> = self.order.values()[self.next..end]
            .iter()
            .map(|&i| {
                let (b, r) = self.locate[i as usize];
                (b as usize, r as usize)
            })
            .collect();
        self.next = end;
        Some(self.gather(&picks))
    }
}

impl SortedSlices {
    /// Gathers on the writer's threads: columns go out to them the largest first.
    pub(crate) fn with_threads(mut self, threads: ThreadShare) -> Self {
        self.threads = Some(threads);
        self
    }

    /// The rows `picks` ((batch, row) pairs) as one batch.
    fn gather(&self, picks: &[(usize, usize)]) -> Result<RecordBatch> {
        let threads = self.threads.as_ref().map_or(1, ThreadShare::threads);
        let column = |c: usize| {
            let arrays: Vec<&dyn arrow::array::Array> =
                self.batches.iter().map(|b| b[c].as_ref()).collect();
            match self.dictionaries.get(c).and_then(Option::as_ref) {
                Some(dictionary) => dictionary.gather(&arrays, picks),
                None => compact::gather(&arrays, picks, self.schema.field(c).data_type()),
            }
        };
        let n = self.schema.fields().len();
        let Some(first) = self.batches.first().filter(|_| threads > 1 && n > 0) else {
            let arrays = (0..n).map(column).collect::<Result<Vec<_>>>()?;
            return Ok(RecordBatch::try_new(Arc::clone(&self.schema), arrays)?);
        };
        let mut columns: Vec<usize> = (0..n).collect();
        columns.sort_by_key(|&c| std::cmp::Reverse(first[c].get_array_memory_size()));
        let gathered = on_threads(columns.clone(), threads, column)?;
        let mut arrays: Vec<Option<arrow::array::ArrayRef>> = vec![None; columns.len()];
        for (c, array) in columns.into_iter().zip(gathered) {
            arrays[c] = Some(array?);
        }
        let arrays = arrays.into_iter().flatten().collect();
        Ok(RecordBatch::try_new(Arc::clone(&self.schema), arrays)?)
    }
}

/// Ascending, nulls first: Druid's order for dimensions.
pub(crate) const SORT_OPTIONS: SortOptions = SortOptions {
    descending: false,
    nulls_first: true,
};

fn is_identity(indices: &UInt32Array) -> bool {
    indices
        .values()
        .iter()
        .enumerate()
        .all(|(i, &v)| i == v as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compact::Compactor;
    use arrow::datatypes::Field;

    #[test]
    fn a_sorts_memory_counts_key_ranks_and_plain_string_row_numbers() {
        let schema = Schema::new(vec![
            Field::new("__time", DataType::Int64, false),
            Field::new("page", DataType::Utf8, true),
            Field::new(
                "country",
                DataType::Dictionary(Box::new(DataType::UInt16), Box::new(DataType::Utf8)),
                true,
            ),
            Field::new("user", DataType::Utf8View, true),
        ]);
        let order = ChunkOrder {
            columns: vec![1, 0],
        };
        // Two key ranks and the packed key while sorting; the order and locations, and
        // row numbers for the two plain string columns (not the dictionary one) after.
        assert_eq!(
            order.sort_bytes_per_row(&schema),
            (2 * 8 + 16, 4 + 8 + 2 * 4)
        );
    }

    /// The sorted slices of `pieces` as plain rows, on one thread.
    fn plain_sort(
        order: &ChunkOrder,
        pieces: &[Routed],
        rows: usize,
        schema: &SchemaRef,
    ) -> Vec<RecordBatch> {
        order
            .sorted_slices(pieces, rows, schema, false, None)
            .expect("sort")
            .collect::<Result<_>>()
            .expect("slices")
    }

    #[test]
    fn chunks_sort_by_key_nulls_first_and_ties_in_input_order() {
        use arrow::array::{Int64Array, StringArray};
        use arrow::datatypes::{DataType, Field, Schema};
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, true),
            Field::new("__time", DataType::Int64, false),
            Field::new("tag", DataType::Int64, false),
        ]));
        let batch = |k: Vec<Option<&str>>, t: Vec<i64>, tag: Vec<i64>| {
            RecordBatch::try_new(
                Arc::clone(&schema),
                vec![
                    Arc::new(StringArray::from(k)),
                    Arc::new(Int64Array::from(t)),
                    Arc::new(Int64Array::from(tag)),
                ],
            )
            .expect("batch")
        };
        let batches = [
            batch(
                vec![Some("b"), None, Some("a")],
                vec![5, 9, 7],
                vec![0, 1, 2],
            ),
            batch(vec![], vec![], vec![]),
            batch(
                vec![Some("a"), Some("b"), None],
                vec![7, 1, 3],
                vec![3, 4, 5],
            ),
        ]
        .map(Routed::whole);
        let order = ChunkOrder {
            columns: vec![0, 1],
        };
        let sorted: Vec<RecordBatch> = plain_sort(&order, &batches, 4, &schema);
        assert_eq!(
            sorted.iter().map(RecordBatch::num_rows).collect::<Vec<_>>(),
            [4, 2]
        );
        // The `tag` column of sorted slices, in order.
        let tags = |slices: &[RecordBatch]| -> Vec<i64> {
            slices
                .iter()
                .flat_map(|b| {
                    b.column(2)
                        .as_any()
                        .downcast_ref::<Int64Array>()
                        .expect("tags")
                        .values()
                        .to_vec()
                })
                .collect()
        };
        let tags_sorted = tags(&sorted);
        // Gathered column by column on two threads: the same batches.
        let threaded: Vec<RecordBatch> = order
            .sorted_slices(&batches, 4, &schema, false, None)
            .expect("sort")
            .with_threads(ThreadShare::new(2))
            .collect::<Result<_>>()
            .expect("slices");
        assert_eq!(threaded, sorted);
        // Held compact (string columns as dictionaries): the same plain batches.
        let compactor = Compactor::new(&schema);
        let compacted: Vec<Routed> = batches
            .iter()
            .map(|p| Ok(Routed::whole(compactor.compact(&p.batch)?)))
            .collect::<Result<_>>()
            .expect("compact");
        // A range bucket of the chunk: some rows of some of its batches, gathering keys into
        // the chunk's dictionaries made once (the batches named by their place).
        let all: Vec<RecordBatch> = compacted.iter().map(|p| p.batch.clone()).collect();
        let (keyed, columns) = ChunkDictionary::for_columns(&all, &schema).expect("dictionaries");
        let shared = SharedDictionaries {
            schema: keyed,
            columns,
        };
        let bucket = [
            Routed::part(all[2].clone(), UInt32Array::from(vec![0u32, 2]), 2),
            Routed::part(all[0].clone(), UInt32Array::from(vec![1u32]), 0),
        ];
        let own = order
            .sorted_slices(&bucket, 4, &schema, true, None)
            .expect("sort")
            .collect::<Result<Vec<_>>>()
            .expect("slices");
        let with_shared = order
            .sorted_slices(&bucket, 4, &schema, true, Some(&shared))
            .expect("sort")
            .collect::<Result<Vec<_>>>()
            .expect("slices");
        let plain = |b: &[RecordBatch]| -> Vec<RecordBatch> {
            b.iter()
                .map(|b| compact::expand(b, &schema).expect("plain"))
                .collect()
        };
        assert_eq!(plain(&with_shared), plain(&own));
        assert_eq!(tags(&plain(&with_shared)), [5, 1, 3]);
        for threads in [1, 2] {
            let sort = |as_keys| -> Vec<RecordBatch> {
                order
                    .sorted_slices(&compacted, 4, &schema, as_keys, None)
                    .expect("sort")
                    .with_threads(ThreadShare::new(threads))
                    .collect::<Result<_>>()
                    .expect("slices")
            };
            assert_eq!(sort(false), sorted);
            // As keys into one dictionary of the chunk: the same values.
            let as_keys = sort(true);
            assert!(matches!(
                as_keys[0].column(0).data_type(),
                DataType::Dictionary(..)
            ));
            let as_plain: Vec<RecordBatch> = as_keys
                .iter()
                .map(|b| compact::expand(b, &schema).expect("plain"))
                .collect();
            assert_eq!(as_plain, sorted);
        }
        // NULL keys first (by time), then "a" (a tie at time 7: input order), then "b".
        assert_eq!(tags_sorted, [5, 1, 2, 3, 4, 0]);
        // `__time` alone: ties still in input order.
        let by_time: Vec<RecordBatch> =
            plain_sort(&ChunkOrder { columns: vec![1] }, &batches, 100, &schema);
        assert_eq!(tags(&by_time), [4, 5, 0, 2, 3, 1]);
        // Some rows of a batch (in the order given) sort as a copy of them does.
        let picked = [2u32, 0];
        let part = Routed {
            batch: batches[0].batch.clone(),
            rows: Some(UInt32Array::from(picked.to_vec())),
            source: None,
        };
        let copy = Routed::whole(part.materialize().expect("copy"));
        assert_eq!(copy.batch.num_rows(), 2);
        for rows in [1, 100] {
            let from_part: Vec<RecordBatch> =
                plain_sort(&order, &[part.clone(), batches[2].clone()], rows, &schema);
            let from_copy: Vec<RecordBatch> =
                plain_sort(&order, &[copy.clone(), batches[2].clone()], rows, &schema);
            assert_eq!(from_part, from_copy);
            assert_eq!(tags(&from_part), [5, 2, 3, 4, 0]);
        }
        // Already in order: the rows as they are, a part's rows copied.
        let in_order = Routed {
            batch: batches[2].batch.clone(),
            rows: Some(UInt32Array::from(vec![1u32, 2])),
            source: None,
        };
        let ready: Vec<RecordBatch> =
            plain_sort(&ChunkOrder { columns: vec![2] }, &[in_order], 10, &schema);
        assert_eq!(tags(&ready), [4, 5]);
    }

    /// Packed integer keys sort exactly as the row format does, nulls first, ties in
    /// input order; keys too wide to pack fall back to the row format.
    #[test]
    fn packed_keys_sort_as_the_row_format_does() {
        use arrow::array::{Int64Array, LargeStringArray, StringArray};
        use arrow::datatypes::{DataType, Field, Schema};
        let schema = Arc::new(Schema::new(vec![
            Field::new("s", DataType::Utf8, true),
            Field::new("l", DataType::LargeUtf8, true),
            Field::new("n", DataType::Int64, true),
            Field::new("__time", DataType::Int64, false),
        ]));
        let mut seed = 7u64;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            seed >> 33
        };
        let words = ["", "a", "ab", "b", "Z", "\u{e9}t\u{e9}", "zz"];
        let batches: Vec<RecordBatch> = (0..4)
            .map(|_| {
                let rows = 300 + (next() % 50) as usize;
                let mut col = |nulls: u64| -> Vec<Option<String>> {
                    (0..rows)
                        .map(|_| {
                            let r = next();
                            (r % nulls != 0).then(|| words[(r / 7) as usize % words.len()].into())
                        })
                        .collect()
                };
                let (s, l) = (col(5), col(3));
                let n: Vec<Option<i64>> = (0..rows)
                    .map(|_| {
                        let r = next();
                        (r % 4 != 0).then(|| {
                            (r % 9) as i64 - 4 + if r % 11 == 0 { i64::MIN / 2 } else { 0 }
                        })
                    })
                    .collect();
                let t: Vec<i64> = (0..rows).map(|_| (next() % 5) as i64 * 1000).collect();
                RecordBatch::try_new(
                    Arc::clone(&schema),
                    vec![
                        Arc::new(StringArray::from(s)),
                        Arc::new(LargeStringArray::from(l)),
                        Arc::new(Int64Array::from(n)),
                        Arc::new(Int64Array::from(t)),
                    ],
                )
                .expect("batch")
            })
            .collect();
        let total: usize = batches.iter().map(RecordBatch::num_rows).sum();
        for columns in [
            vec![0, 3],
            vec![1, 0, 3],
            vec![2, 3],
            vec![3],
            vec![2, 1, 0, 3],
        ] {
            let order = ChunkOrder {
                columns: columns.clone(),
            };
            let packed = packed_keys(&batches, &columns, total).expect("packable");
            let rows = order
                .row_format_order(&batches, total as u32)
                .expect("row format");
            assert_eq!(packed, rows.values().to_vec(), "key {columns:?}");
        }
        // Strings held compact (dictionaries) rank as the plain strings do.
        let compactor = Compactor::new(&schema);
        let compacted: Vec<RecordBatch> = batches
            .iter()
            .map(|b| compactor.compact(b).expect("compact"))
            .collect();
        assert!(matches!(
            compacted[0].column(0).data_type(),
            DataType::Dictionary(..)
        ));
        for columns in [vec![0, 3], vec![1, 0, 3], vec![2, 1, 0, 3]] {
            let plain = packed_keys(&batches, &columns, total).expect("packable");
            let compact = packed_keys(&compacted, &columns, total).expect("packable");
            assert_eq!(compact, plain, "key {columns:?}");
            let rows = ChunkOrder { columns }
                .row_format_order(&compacted, total as u32)
                .expect("row format");
            assert_eq!(rows.values().to_vec(), plain);
        }
        // Two full-range integers and the row number need more than 127 bits.
        let wide = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("a", DataType::Int64, false),
                Field::new("b", DataType::Int64, false),
            ])),
            vec![
                Arc::new(Int64Array::from(vec![i64::MIN, i64::MAX, 0])),
                Arc::new(Int64Array::from(vec![i64::MAX, i64::MIN, 0])),
            ],
        )
        .expect("batch");
        assert_eq!(packed_keys(std::slice::from_ref(&wide), &[0, 1], 3), None);
        let order = ChunkOrder {
            columns: vec![0, 1],
        };
        let sorted = order
            .sort_indices(std::slice::from_ref(&wide), 3)
            .expect("sort");
        assert_eq!(sorted.values().to_vec(), [0, 2, 1]);
    }
}
