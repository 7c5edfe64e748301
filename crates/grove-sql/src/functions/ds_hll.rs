//! `APPROX_COUNT_DISTINCT_DS_HLL` and `DS_HLL`: Druid's DataSketches HLL aggregators
//! as DataFusion aggregate UDFs.
//!
//! ```text
//! values / sketches ─▶ HllUnion (lgK) ─▶ partial state: sketch bytes (HLL_8)
//!                                         └─▶ final merge ─▶ estimate | sketch (tgtHllType)
//! ```
//!
//! Both accept the same arguments, `(expr [, lgK [, tgtHllType]])`, with `lgK` and
//! `tgtHllType` literals. `expr` is a string, number or timestamp column (values are
//! added to the sketch) or an HLL sketch column (sketches are merged).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BinaryBuilder, BooleanArray, Int64Array};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{Result, ScalarValue, internal_err, plan_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature, Volatility,
};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Literal;
use datasketches::hll::{HllType, HllUnion};
use grove_common::types::ComplexType;

use super::args::{check_arity, coerce_integer, coerce_string};
use super::hll::{
    HllParams, add_input, coerce_input, for_each_input, merge_sketches, update_union,
};

/// Druid's `APPROX_COUNT_DISTINCT_DS_HLL(expr [, lgK [, tgtHllType]])`: the distinct
/// count estimate of `expr`, rounded, as BIGINT (0 for no rows). Defaults: `lgK` 12,
/// `tgtHllType` `'HLL_4'`. Binary input is read as HLL sketches, which are merged.
///
/// In an INSERT/REPLACE with `finalizeAggregations: false`, the planner replaces it
/// with [`DsHllFunc`] so the sketch itself is stored.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ApproxCountDistinctDsHllFunc {
    signature: Signature,
}

/// Druid's `DS_HLL(expr [, lgK [, tgtHllType]])`: the HLL sketch of `expr`, serialized
/// (DataSketches' compact image) as Arrow `Binary` marked `COMPLEX<HLLSketch>`. An
/// empty input gives an empty sketch.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct DsHllFunc {
    signature: Signature,
}

impl Default for ApproxCountDistinctDsHllFunc {
    fn default() -> Self {
        Self::new()
    }
}

impl ApproxCountDistinctDsHllFunc {
    /// Creates the function.
    pub fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl Default for DsHllFunc {
    fn default() -> Self {
        Self::new()
    }
}

impl DsHllFunc {
    /// Creates the function.
    pub fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

/// What an accumulator returns when finalized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Output {
    /// The rounded estimate, BIGINT.
    Estimate,
    /// The sketch, serialized.
    Sketch,
}

fn coerce_args(name: &str, arg_types: &[DataType]) -> Result<Vec<DataType>> {
    check_arity(name, arg_types, 1, 3)?;
    let mut out = vec![coerce_input(name, &arg_types[0])?];
    if let Some(t) = arg_types.get(1) {
        out.push(coerce_integer(name, "lgK", t)?);
    }
    if let Some(t) = arg_types.get(2) {
        out.push(coerce_string(name, "tgtHllType", t)?);
    }
    Ok(out)
}

/// The value of literal argument `i`, if given; an error if it is not a literal.
fn literal_arg(
    name: &str,
    what: &str,
    exprs: &[Arc<dyn PhysicalExpr>],
    i: usize,
) -> Result<Option<ScalarValue>> {
    let Some(expr) = exprs.get(i) else {
        return Ok(None);
    };
    match expr.downcast_ref::<Literal>() {
        Some(lit) => Ok(Some(lit.value().clone())),
        None => plan_err!(
            "{}: the {what} argument must be a literal",
            name.to_uppercase()
        ),
    }
}

/// The aggregator's `lgK` and `tgtHllType`; DISTINCT is refused.
fn params_of(name: &str, args: &AccumulatorArgs) -> Result<HllParams> {
    if args.is_distinct {
        // A sketch already counts distinct values; DISTINCT changes nothing.
        return plan_err!("{}: DISTINCT is not supported", name.to_uppercase());
    }
    let lg_k = literal_arg(name, "lgK", args.exprs, 1)?;
    let hll_type = literal_arg(name, "tgtHllType", args.exprs, 2)?;
    HllParams::from_scalars(name, lg_k.as_ref(), hll_type.as_ref())
}

fn accumulator(name: &str, args: &AccumulatorArgs, output: Output) -> Result<Box<dyn Accumulator>> {
    let params = params_of(name, args)?;
    Ok(Box::new(HllAccumulator {
        name: name.to_string(),
        union: params.new_union(name)?,
        hll_type: params.hll_type,
        output,
    }))
}

fn groups_accumulator(
    name: &str,
    args: &AccumulatorArgs,
    output: Output,
) -> Result<Box<dyn GroupsAccumulator>> {
    let params = params_of(name, args)?;
    params.new_union(name)?; // checks lgK once
    Ok(Box::new(HllGroupsAccumulator {
        name: name.to_string(),
        params,
        output,
        unions: Vec::new(),
        heap: 0,
    }))
}

fn state_fields(args: &StateFieldsArgs) -> Vec<FieldRef> {
    vec![Arc::new(Field::new(
        format_state_name(args.name, "hll_sketch"),
        DataType::Binary,
        true,
    ))]
}

impl AggregateUDFImpl for ApproxCountDistinctDsHllFunc {
    fn name(&self) -> &str {
        "approx_count_distinct_ds_hll"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce_args(self.name(), arg_types)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }

    fn is_nullable(&self) -> bool {
        false
    }

    fn default_value(&self, _data_type: &DataType) -> Result<ScalarValue> {
        Ok(ScalarValue::Int64(Some(0)))
    }

    fn accumulator(&self, acc_args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        accumulator(self.name(), &acc_args, Output::Estimate)
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        !args.is_distinct
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        groups_accumulator(self.name(), &args, Output::Estimate)
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(state_fields(&args))
    }
}

impl AggregateUDFImpl for DsHllFunc {
    fn name(&self) -> &str {
        "ds_hll"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce_args(self.name(), arg_types)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(ComplexType::HllSketch.arrow_type())
    }

    fn return_field(&self, _arg_fields: &[FieldRef]) -> Result<FieldRef> {
        Ok(Arc::new(ComplexType::HllSketch.field(self.name(), false)))
    }

    fn is_nullable(&self) -> bool {
        false
    }

    fn accumulator(&self, acc_args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        accumulator(self.name(), &acc_args, Output::Sketch)
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        !args.is_distinct
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        groups_accumulator(self.name(), &args, Output::Sketch)
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(state_fields(&args))
    }
}

/// One group's sketch. The union takes both raw values and sketches; its partial
/// state is an `HLL_8` sketch (no precision lost), the final sketch has the
/// requested `tgtHllType`.
#[derive(Debug)]
struct HllAccumulator {
    name: String,
    union: HllUnion,
    hll_type: HllType,
    output: Output,
}

impl Accumulator for HllAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let Some(array) = values.first() else {
            return internal_err!("{}: no input column", self.name);
        };
        update_union(&self.name, &mut self.union, array)
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(match self.output {
            // Estimates are non-negative, so rounding matches Java's Math.round.
            Output::Estimate => ScalarValue::Int64(Some(self.union.estimate().round() as i64)),
            Output::Sketch => {
                ScalarValue::Binary(Some(self.union.to_sketch(self.hll_type).serialize()))
            }
        })
    }

    fn size(&self) -> usize {
        size_of_val(self) + self.name.capacity() + self.union.estimated_size()
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![ScalarValue::Binary(Some(
            self.union.to_sketch(HllType::Hll8).serialize(),
        ))])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let Some(array) = states.first() else {
            return internal_err!("{}: no state column", self.name);
        };
        merge_sketches(&self.name, &mut self.union, array.as_binary::<i32>().iter())
    }
}

/// Every group's sketch, for DataFusion's hash aggregation: one union per group,
/// created when the group sees its first value, fed row by row. Same results as
/// [`HllAccumulator`], without an accumulator object and array slices per group.
#[derive(Debug)]
struct HllGroupsAccumulator {
    name: String,
    params: HllParams,
    output: Output,
    /// By group index; `None` until the group has a value.
    unions: Vec<Option<HllUnion>>,
    /// The unions' estimated bytes, kept as they change (`size` is called per batch).
    heap: usize,
}

impl HllGroupsAccumulator {
    /// Adds each row of `values[0]` (values or sketches) to its group's union.
    fn add(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        let Some(array) = values.first() else {
            return internal_err!("{}: no input column", self.name);
        };
        if self.unions.len() < total_num_groups {
            self.unions.resize_with(total_num_groups, || None);
        }
        let Self {
            name,
            params,
            unions,
            heap,
            ..
        } = self;
        for_each_input(name, array, |row, value| {
            if !passes(filter, row) {
                return Ok(());
            }
            let Some(slot) = group_indices.get(row).and_then(|&g| unions.get_mut(g)) else {
                return internal_err!("{name}: row {row} has no group");
            };
            let (union, before) = match slot {
                Some(u) => {
                    let before = u.estimated_size();
                    (u, before)
                }
                None => (slot.insert(params.new_union(name)?), 0),
            };
            add_input(name, union, value)?;
            *heap = heap.saturating_sub(before) + union.estimated_size();
            Ok(())
        })
    }

    /// Removes the groups `emit_to` names, returning them.
    fn take(&mut self, emit_to: EmitTo) -> Vec<Option<HllUnion>> {
        let taken = emit_to.take_needed(&mut self.unions);
        let freed: usize = taken.iter().flatten().map(HllUnion::estimated_size).sum();
        self.heap = self.heap.saturating_sub(freed);
        taken
    }

    /// Serializes sketches, one per group; `empty` stands for a group without values.
    fn sketches(
        unions: &[Option<HllUnion>],
        hll_type: datasketches::hll::HllType,
        empty: Option<&[u8]>,
    ) -> ArrayRef {
        let mut out = BinaryBuilder::with_capacity(unions.len(), unions.len() * 16);
        for u in unions {
            match (u, empty) {
                (Some(u), _) => out.append_value(u.to_sketch(hll_type).serialize()),
                (None, Some(e)) => out.append_value(e),
                (None, None) => out.append_null(),
            }
        }
        Arc::new(out.finish())
    }
}

/// Whether an aggregate's FILTER keeps `row` (NULL does not).
fn passes(filter: Option<&BooleanArray>, row: usize) -> bool {
    filter.is_none_or(|f| f.is_valid(row) && f.value(row))
}

impl GroupsAccumulator for HllGroupsAccumulator {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.add(values, group_indices, opt_filter, total_num_groups)
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let unions = self.take(emit_to);
        Ok(match self.output {
            Output::Estimate => Arc::new(Int64Array::from_iter_values(unions.iter().map(|u| {
                // Estimates are non-negative, so rounding matches Java's Math.round.
                u.as_ref().map_or(0, |u| u.estimate().round() as i64)
            }))),
            Output::Sketch => {
                let empty = self
                    .params
                    .new_union(&self.name)?
                    .to_sketch(self.params.hll_type)
                    .serialize();
                Self::sketches(&unions, self.params.hll_type, Some(&empty))
            }
        })
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        // Partial states are HLL_8 (no precision lost); a group without values is NULL,
        // which merging skips.
        let unions = self.take(emit_to);
        Ok(vec![Self::sketches(&unions, HllType::Hll8, None)])
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.add(values, group_indices, None, total_num_groups)
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let Some(array) = values.first() else {
            return internal_err!("{}: no input column", self.name);
        };
        // Each row becomes its own group's state.
        let mut rows: Vec<Option<HllUnion>> = Vec::new();
        rows.resize_with(array.len(), || None);
        for_each_input(&self.name, array, |row, value| {
            if !passes(opt_filter, row) {
                return Ok(());
            }
            let mut union = self.params.new_union(&self.name)?;
            add_input(&self.name, &mut union, value)?;
            if let Some(slot) = rows.get_mut(row) {
                *slot = Some(union);
            }
            Ok(())
        })?;
        Ok(vec![Self::sketches(&rows, HllType::Hll8, None)])
    }

    fn size(&self) -> usize {
        size_of_val(self)
            + self.name.capacity()
            + self.unions.capacity() * size_of::<Option<HllUnion>>()
            + self.heap
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{BinaryArray, Int64Array, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};
    use datasketches::common::NumStdDev;
    use datasketches::hll::HllSketch;

    use super::super::test_util::{error, value};
    use super::*;

    fn acc(output: Output, lg_k: u8, hll_type: HllType) -> HllAccumulator {
        HllAccumulator {
            name: "t".into(),
            union: HllUnion::new(lg_k).expect("valid lgK"),
            hll_type,
            output,
        }
    }

    fn strings(range: std::ops::Range<u32>) -> ArrayRef {
        Arc::new(StringArray::from_iter_values(
            range.map(|i| format!("user-{i}")),
        ))
    }

    #[test]
    fn estimate_within_error_bound() {
        let mut a = acc(Output::Estimate, 12, HllType::Hll4);
        for chunk in 0..10 {
            a.update_batch(&[strings(chunk * 10_000..(chunk + 1) * 10_000)])
                .expect("update");
        }
        // Duplicates do not count.
        a.update_batch(&[strings(0..50_000)]).expect("update");
        let ScalarValue::Int64(Some(n)) = a.evaluate().expect("evaluate") else {
            panic!("not a BIGINT")
        };
        let sketch = a.union.to_sketch(HllType::Hll4);
        let (lo, hi) = (
            sketch.lower_bound(NumStdDev::Three),
            sketch.upper_bound(NumStdDev::Three),
        );
        assert!(lo <= 100_000.0 && 100_000.0 <= hi, "{lo}..{hi}");
        // lgK 12: relative standard error about 1.6%; 3 sigma is under 5%.
        assert!((n - 100_000).abs() < 5_000, "estimate {n}");
    }

    /// Merges the partial states of `parts` into a fresh accumulator.
    fn merge_states(parts: &mut [HllAccumulator]) -> HllAccumulator {
        let mut merged = acc(Output::Sketch, 12, HllType::Hll4);
        for part in parts {
            let ScalarValue::Binary(Some(state)) = part.state().expect("state").remove(0) else {
                panic!("state is not binary")
            };
            merged
                .merge_batch(&[Arc::new(BinaryArray::from(vec![Some(state.as_slice())]))])
                .expect("merge");
        }
        merged
    }

    fn sketch_of(a: &mut HllAccumulator) -> HllSketch {
        let ScalarValue::Binary(Some(bytes)) = a.evaluate().expect("evaluate") else {
            panic!("not a sketch")
        };
        HllSketch::deserialize(&bytes).expect("sketch")
    }

    #[test]
    fn merging_partial_states_equals_one_sketch_over_the_union() {
        let whole = || {
            let mut a = acc(Output::Sketch, 12, HllType::Hll4);
            a.update_batch(&[strings(0..30_000)]).expect("update");
            a
        };
        let mut left = acc(Output::Sketch, 12, HllType::Hll4);
        left.update_batch(&[strings(0..20_000)]).expect("update");
        let mut right = acc(Output::Sketch, 12, HllType::Hll4);
        right
            .update_batch(&[strings(10_000..30_000)])
            .expect("update");

        let merged = sketch_of(&mut merge_states(&mut [left, right]));
        assert_eq!(merged.target_type(), HllType::Hll4);
        assert_eq!(merged.lg_config_k(), 12);
        // A merged sketch estimates from its registers alone (an unmerged one from its
        // update history), so compare with the whole input's sketch merged with itself:
        // same registers, same estimate and bounds.
        let whole_merged = sketch_of(&mut merge_states(&mut [whole(), whole()]));
        assert_eq!(merged.estimate(), whole_merged.estimate());
        assert_eq!(
            merged.upper_bound(NumStdDev::Two),
            whole_merged.upper_bound(NumStdDev::Two)
        );
        let unmerged = sketch_of(&mut whole());
        assert!(
            (merged.estimate() - unmerged.estimate()).abs() < 0.01 * unmerged.estimate(),
            "{} vs {}",
            merged.estimate(),
            unmerged.estimate()
        );
        assert!(
            (merged.estimate() - 30_000.0).abs() < 1_500.0,
            "{}",
            merged.estimate()
        );
    }

    #[test]
    fn sketch_input_is_merged() {
        let mut a = acc(Output::Sketch, 12, HllType::Hll8);
        a.update_batch(&[Arc::new(Int64Array::from_iter_values(0..1000)) as ArrayRef])
            .expect("update");
        let ScalarValue::Binary(Some(s1)) = a.evaluate().expect("sketch") else {
            panic!("not binary")
        };
        let mut b = acc(Output::Sketch, 12, HllType::Hll8);
        b.update_batch(&[Arc::new(Int64Array::from_iter_values(500..1500)) as ArrayRef])
            .expect("update");
        let ScalarValue::Binary(Some(s2)) = b.evaluate().expect("sketch") else {
            panic!("not binary")
        };
        let mut est = acc(Output::Estimate, 12, HllType::Hll4);
        let sketches = BinaryArray::from(vec![Some(s1.as_slice()), None, Some(s2.as_slice())]);
        est.update_batch(&[Arc::new(sketches) as ArrayRef])
            .expect("merge");
        let ScalarValue::Int64(Some(n)) = est.evaluate().expect("estimate") else {
            panic!("not a BIGINT")
        };
        assert!((n - 1500).abs() <= 30, "estimate {n}");
    }

    fn groups_acc(output: Output) -> HllGroupsAccumulator {
        HllGroupsAccumulator {
            name: "t".into(),
            params: HllParams {
                lg_k: 12,
                hll_type: HllType::Hll4,
            },
            output,
            unions: Vec::new(),
            heap: 0,
        }
    }

    /// Rows `0..n`: value `user-i`, group `i % groups`; the filter drops every third row.
    fn grouped_rows(n: u32, groups: usize) -> (ArrayRef, Vec<usize>, BooleanArray) {
        let values = strings(0..n);
        let group_indices = (0..n as usize).map(|i| i % groups).collect();
        let filter = BooleanArray::from_iter((0..n).map(|i| Some(i % 3 != 0)));
        (values, group_indices, filter)
    }

    #[test]
    fn groups_accumulator_equals_one_accumulator_per_group() {
        let groups = 7;
        let (values, group_indices, filter) = grouped_rows(5_000, groups);
        // One group (index 7) never gets a row.
        let mut g = groups_acc(Output::Sketch);
        g.update_batch(
            &[Arc::clone(&values)],
            &group_indices,
            Some(&filter),
            groups + 1,
        )
        .expect("update");
        assert!(g.size() > 0);
        let got = g.evaluate(EmitTo::All).expect("evaluate");
        assert_eq!(g.heap, 0, "evaluating all groups frees them");
        let got = got.as_binary::<i32>();
        for group in 0..=groups {
            let mut one = acc(Output::Sketch, 12, HllType::Hll4);
            let rows: Vec<String> = (0..5_000u32)
                .filter(|i| *i as usize % groups == group && i % 3 != 0)
                .map(|i| format!("user-{i}"))
                .collect();
            one.update_batch(&[Arc::new(StringArray::from(rows)) as ArrayRef])
                .expect("update");
            let ScalarValue::Binary(Some(expected)) = one.evaluate().expect("evaluate") else {
                panic!("not a sketch")
            };
            assert_eq!(got.value(group), expected.as_slice(), "group {group}");
        }
    }

    #[test]
    fn grouped_partial_states_merge_to_the_same_estimates() {
        let groups = 5;
        let (values, group_indices, _) = grouped_rows(20_000, groups);
        let whole = {
            let mut g = groups_acc(Output::Estimate);
            g.update_batch(&[Arc::clone(&values)], &group_indices, None, groups)
                .expect("update");
            g.evaluate(EmitTo::All).expect("evaluate")
        };
        // Two partial accumulators with half the rows each; states emitted in two parts.
        let mut final_acc = groups_acc(Output::Estimate);
        for half in [0..10_000usize, 10_000..20_000] {
            let mut partial = groups_acc(Output::Estimate);
            partial
                .update_batch(
                    &[values.slice(half.start, half.len())],
                    &group_indices[half.clone()],
                    None,
                    groups,
                )
                .expect("update");
            let first = partial.state(EmitTo::First(2)).expect("state").remove(0);
            let rest = partial.state(EmitTo::All).expect("state").remove(0);
            final_acc
                .merge_batch(&[first], &[0, 1], groups)
                .expect("merge");
            final_acc
                .merge_batch(&[rest], &[2, 3, 4], groups)
                .expect("merge");
        }
        let merged = final_acc.evaluate(EmitTo::All).expect("evaluate");
        let (whole, merged) = (
            whole.as_primitive::<datafusion::arrow::datatypes::Int64Type>(),
            merged.as_primitive::<datafusion::arrow::datatypes::Int64Type>(),
        );
        for group in 0..groups {
            let (w, m) = (whole.value(group), merged.value(group));
            assert!((w - 4_000).abs() < 200, "group {group}: {w}");
            // A merged sketch estimates from its registers alone, an unmerged one from
            // its update history: close, not equal.
            assert!((w - m).abs() <= 120, "group {group}: {w} vs {m}");
        }
        // Rows converted straight to states merge like the rows themselves.
        let mut converted = groups_acc(Output::Estimate);
        let states = converted
            .convert_to_state(&[values.slice(0, 10)], None)
            .expect("convert");
        converted.merge_batch(&states, &[0; 10], 1).expect("merge");
        let n = converted.evaluate(EmitTo::All).expect("evaluate");
        assert_eq!(
            n.as_primitive::<datafusion::arrow::datatypes::Int64Type>()
                .value(0),
            10
        );
    }

    #[test]
    fn bad_parameters_are_errors() {
        let schema = Schema::new(vec![Field::new("x", DataType::Utf8, true)]);
        let exprs: Vec<Arc<dyn PhysicalExpr>> = vec![
            Arc::new(datafusion::physical_expr::expressions::Column::new("x", 0)),
            Arc::new(Literal::new(ScalarValue::Int64(Some(22)))),
        ];
        let fields: Vec<FieldRef> = vec![
            Arc::new(Field::new("x", DataType::Utf8, true)),
            Arc::new(Field::new("k", DataType::Int64, true)),
        ];
        let args = AccumulatorArgs {
            return_field: Arc::new(Field::new("r", DataType::Int64, false)),
            schema: &schema,
            ignore_nulls: false,
            order_bys: &[],
            is_reversed: false,
            name: "r",
            is_distinct: false,
            exprs: &exprs,
            expr_fields: &fields,
        };
        let e = ApproxCountDistinctDsHllFunc::new()
            .accumulator(args)
            .expect_err("lgK 22");
        assert!(
            e.to_string()
                .contains("lgK must be between 4 and 21, got [22]"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn through_sql() {
        let values = "(VALUES ('a', 1), ('b', 2), ('a', 3), (NULL, 4), ('c', 4)) AS t(s, n)";
        let cases = [
            ("APPROX_COUNT_DISTINCT_DS_HLL(s)", "3"),
            ("APPROX_COUNT_DISTINCT_DS_HLL(n)", "4"),
            ("APPROX_COUNT_DISTINCT_DS_HLL(s, 10, 'HLL_8')", "3"),
            ("APPROX_COUNT_DISTINCT_DS_HLL(CAST(n AS DOUBLE))", "4"),
            ("HLL_SKETCH_ESTIMATE(DS_HLL(s), true)", "3.0"),
            (
                "ROUND(HLL_SKETCH_ESTIMATE(DS_HLL(s, 21, 'hll_6')), 3)",
                "3.0",
            ),
            (
                "APPROX_COUNT_DISTINCT_DS_HLL(s) FILTER (WHERE n > 100)",
                "0",
            ),
        ];
        for (expr, expected) in cases {
            assert_eq!(
                value(&format!("SELECT {expr} FROM {values}")).await,
                expected,
                "{expr}"
            );
        }
        // Re-aggregating per-group sketches gives the overall count.
        let nested = format!(
            "SELECT APPROX_COUNT_DISTINCT_DS_HLL(sk) FROM \
             (SELECT n, DS_HLL(s) AS sk FROM {values} GROUP BY n)"
        );
        assert_eq!(value(&nested).await, "3");
    }

    #[tokio::test]
    async fn sql_errors() {
        let e =
            error("SELECT APPROX_COUNT_DISTINCT_DS_HLL(x, 3) FROM (VALUES ('a')) AS t(x)").await;
        assert!(e.contains("lgK must be between 4 and 21, got [3]"), "{e}");
        let e = error("SELECT DS_HLL(x, 12, 'HLL_7') FROM (VALUES ('a')) AS t(x)").await;
        assert!(e.contains("unknown tgtHllType [HLL_7]"), "{e}");
        let e = error("SELECT DS_HLL(x, y) FROM (VALUES ('a', 12)) AS t(x, y)").await;
        assert!(e.contains("lgK argument must be a literal"), "{e}");
        let e = error("SELECT DS_HLL(x, 'big') FROM (VALUES ('a')) AS t(x)").await;
        assert!(e.contains("lgK argument must be an integer"), "{e}");
        let e = error(
            "SELECT APPROX_COUNT_DISTINCT_DS_HLL(x) FROM (VALUES (CAST('abc' AS BYTEA))) AS t(x)",
        )
        .await;
        assert!(e.contains("not a valid HLL sketch"), "{e}");
        let e = error("SELECT DS_HLL() FROM (VALUES (1)) AS t(x)").await;
        assert!(e.contains("DS_HLL expects 1 to 3 arguments"), "{e}");
    }
}
