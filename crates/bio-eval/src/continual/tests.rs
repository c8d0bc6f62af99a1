use std::collections::BTreeSet;

use bio_core::{BpConfig, BpParams, Matrix, ReferenceBackend};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::methods::{BpLearner, BpMethod, Ncm, NcmFeatures, ReplayBuffer};
use super::*;

/// A source that records every `(context, index)` it serves, tagged with the context being trained.
struct Recording<'a> {
    inner: SplitSource<'a>,
    log: std::rc::Rc<std::cell::RefCell<Vec<(usize, usize)>>>,
}

impl ContextSource for Recording<'_> {
    fn len(&self, context: usize) -> usize {
        self.inner.len(context)
    }
    fn rows(&mut self, items: &[(usize, usize)]) -> (Matrix, Vec<usize>) {
        self.log.borrow_mut().extend_from_slice(items);
        self.inner.rows(items)
    }
}

/// Four classes in 4 pixels: class `c` lights pixel `c` (plus a little of the others).
fn toy(per_class: usize) -> (Matrix, Vec<usize>) {
    let labels: Vec<usize> = (0..4 * per_class).map(|i| i % 4).collect();
    let x = Matrix::from_fn(labels.len(), 4, |i, j| if labels[i] == j { 1.0 } else { 0.1 * ((i + j) % 3) as f32 });
    (x, labels)
}

/// Remembers which context it is in and every target it was trained on, per context.
struct Spy {
    context: usize,
    seen: Vec<(usize, usize)>,
    outputs: usize,
}

impl Learner for Spy {
    fn name(&self) -> String {
        "spy".into()
    }
    fn start_context(&mut self, context: usize) -> Result<(), EvalError> {
        self.context = context;
        Ok(())
    }
    fn train_batch(&mut self, _x: &Matrix, targets: &[usize]) -> Result<(), EvalError> {
        self.seen.extend(targets.iter().map(|&t| (self.context, t)));
        Ok(())
    }
    /// Predicts, for every image, the first target it saw in the last context it trained on; before
    /// training, output 0.
    fn scores(&self, x: &Matrix) -> Result<Matrix, EvalError> {
        let favourite = self.seen.last().map_or(0, |&(_, t)| t);
        Ok(Matrix::from_fn(x.rows(), self.outputs, |_, c| if c == favourite { 1.0 } else { 0.0 }))
    }
}

#[test]
fn r_on_a_hand_made_two_context_case() {
    // Contexts {0,1} then {2,3}, class-incremental. Each test image is one of its context's classes,
    // half each. The spy always answers the last target it was trained on.
    let (x, y) = toy(2);
    let protocol = Protocol::split(Scenario::Class, &[0, 1, 2, 3], 2, 4).unwrap();
    let tests = test_sets(&protocol, &x, &y);
    let mut source = SplitSource::new(&protocol, &x, &y);
    let mut spy = Spy { context: 0, seen: Vec::new(), outputs: 4 };
    let budget = Budget { iterations: 3, batch: 4, seed: 1, phases: 1 };
    let r = run(&mut spy, &protocol, &mut source, &tests, &budget, 3, |_| {}).unwrap();
    let first = spy.seen.iter().rev().find(|(c, _)| *c == 0).unwrap().1;
    let last = spy.seen.last().unwrap().1;
    // After context 0 it answers `first` ∈ {0,1}: half of context 0 right, none of context 1.
    assert!(first < 2 && last >= 2);
    assert_eq!(r.r[0], vec![0.5, 0.0]);
    // After context 1 it answers `last` ∈ {2,3}: none of context 0, half of context 1.
    assert_eq!(r.r[1], vec![0.0, 0.5]);
    // Untrained it answers 0: half of context 0.
    assert_eq!(r.initial, vec![0.5, 0.0]);
    let m = r.metrics();
    assert_eq!(m.average, 0.25);
    assert_eq!(m.forgetting, 0.5);
    assert_eq!(m.backward_transfer, -0.5);
    assert_eq!(m.forward_transfer, 0.0);
}

#[test]
fn masked_accuracy_chooses_among_the_allowed_outputs_only() {
    let scores = Matrix::new(2, 3, vec![0.0, 1.0, 5.0, 3.0, 2.0, 9.0]).unwrap();
    assert_eq!(masked_accuracy(&scores, &[1, 0], &[0, 1]), 1.0);
    assert_eq!(masked_accuracy(&scores, &[1, 0], &[0, 1, 2]), 0.0);
}

#[test]
fn metrics_on_a_fixed_matrix() {
    let r = AccuracyMatrix {
        r: vec![vec![0.9, 0.1, 0.2], vec![0.6, 0.8, 0.3], vec![0.5, 0.7, 0.9]],
        initial: vec![0.1, 0.2, 0.1],
    };
    let m = r.metrics();
    let close = |a: f64, b: f64| assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    close(m.average, (0.5 + 0.7 + 0.9) / 3.0);
    close(m.average_after[0], 0.9);
    close(m.average_after[1], (0.6 + 0.8) / 2.0);
    close(m.average_after[2], 0.7);
    close(m.forgetting_per_context[0], 0.9 - 0.5);
    close(m.forgetting_per_context[1], 0.8 - 0.7);
    close(m.forgetting, (0.4 + 0.1) / 2.0);
    close(m.backward_transfer, ((0.5 - 0.9) + (0.7 - 0.8)) / 2.0);
    close(m.forward_transfer, ((0.1 - 0.2) + (0.3 - 0.1)) / 2.0);
}

#[test]
fn scenarios_give_targets_and_allowed_outputs() {
    let class = Protocol::split(Scenario::Class, &[3, 1, 0, 2], 2, 4).unwrap();
    assert_eq!(class.outputs(), 4);
    assert_eq!(class.target(1, 2), 2);
    assert_eq!(class.allowed(0, 0), vec![1, 3]);
    assert_eq!(class.allowed(1, 0), vec![0, 1, 2, 3]);
    let task = Protocol::split(Scenario::Task, &[3, 1, 0, 2], 2, 4).unwrap();
    assert_eq!(task.allowed(1, 0), vec![3, 1]);
    let domain = Protocol::split(Scenario::Domain, &[3, 1, 0, 2], 2, 4).unwrap();
    assert_eq!(domain.outputs(), 2);
    assert_eq!((domain.target(0, 3), domain.target(0, 1), domain.target(1, 0), domain.target(1, 2)), (0, 1, 0, 1));
    assert_eq!(domain.allowed(0, 1), vec![0, 1]);
    let permuted = Protocol::permuted(Scenario::Domain, 3, 4, 4, 7).unwrap();
    assert_eq!(permuted.outputs(), 4);
    assert_eq!(permuted.target(2, 3), 3);
    assert!(permuted.contexts[0].permutation.is_none());
    let p = permuted.contexts[1].permutation.clone().unwrap();
    assert_eq!(p.iter().copied().collect::<BTreeSet<_>>(), (0..4).collect());
    assert_eq!(permuted.show(1, &[10.0, 11.0, 12.0, 13.0]), p.iter().map(|&k| 10.0 + k as f32).collect::<Vec<_>>());
    assert!(Protocol::split(Scenario::Class, &[0, 0, 1, 2], 2, 4).is_err());
    assert!(Protocol::split(Scenario::Class, &[0, 1], 2, 4).is_err());
    let orders = Protocol::orders(10, 3, 0);
    assert_eq!(orders.len(), 4);
    assert_eq!(orders[0], (0..10).collect::<Vec<_>>());
    assert!(orders[1..].iter().all(|o| o.iter().copied().collect::<BTreeSet<_>>().len() == 10 && o != &orders[0]));
}

#[test]
fn replay_buffer_keeps_at_most_its_budget_per_class() {
    let (x, y) = toy(30);
    let mut buffer = ReplayBuffer::new(5);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    buffer.add_context(0, &x, &y, &mut rng);
    buffer.add_context(0, &x, &y, &mut rng);
    assert_eq!(buffer.len(), 20);
    assert!(buffer.counts().values().all(|&n| n == 5));
    let (sx, sy) = buffer.sample(50, &mut rng);
    assert_eq!((sx.rows(), sy.len()), (50, 50));
    // Every replayed image is one that was given for its target.
    for (n, &t) in sy.iter().enumerate() {
        assert!((0..x.rows()).any(|r| y[r] == t && x.row(r) == sx.row(n)));
    }
    let small = toy(2);
    let mut b2 = ReplayBuffer::new(100);
    b2.add_context(1, &small.0, &small.1, &mut rng);
    assert_eq!(b2.len(), 8, "a class with fewer images than the budget keeps them all");
}

fn bp_config() -> BpConfig {
    BpParams { hidden: vec![8], ..BpParams::default() }.check().unwrap()
}

#[test]
fn no_method_sees_old_data_it_should_not() {
    let (x, y) = toy(10);
    let protocol = Protocol::split(Scenario::Class, &[0, 1, 2, 3], 2, 4).unwrap();
    let tests = test_sets(&protocol, &x, &y);
    let budget = Budget { iterations: 4, batch: 6, seed: 3, phases: 1 };
    let b = ReferenceBackend;
    let methods = [
        BpMethod::Finetune,
        BpMethod::Joint,
        BpMethod::Ewc { lambda: 1.0, fisher_samples: 4 },
        BpMethod::Si { c: 1.0, xi: 0.1 },
        BpMethod::Replay { per_class: 3 },
        BpMethod::Lwf { temperature: 2.0, scenario: Scenario::Class, heads: vec![vec![0, 1], vec![2, 3]] },
    ];
    let mut learners: Vec<Box<dyn Learner>> = methods
        .iter()
        .map(|m| Box::new(BpLearner::new(&b, bp_config(), m.clone(), 4, 4, 0)) as Box<dyn Learner>)
        .collect();
    learners.push(Box::new(Ncm::new(&b, NcmFeatures::Pixels, 4)));
    for learner in &mut learners {
        let log = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let mut source = Recording { inner: SplitSource::new(&protocol, &x, &y), log: log.clone() };
        let mut served_during = vec![BTreeSet::new(); 2];
        let mut current = 0;
        let mut mark = 0;
        run(learner.as_mut(), &protocol, &mut source, &tests, &budget, 5, |i| {
            // Everything served since the last mark belongs to the previous context's training.
            let log = log.borrow();
            if i > 0 {
                served_during[current].extend(log[mark..].iter().map(|(c, _)| *c));
            }
            mark = log.len();
            current = i;
        })
        .unwrap();
        served_during[current].extend(log.borrow()[mark..].iter().map(|(c, _)| *c));
        let name = learner.name();
        assert_eq!(served_during[0], BTreeSet::from([0]), "{name}");
        let expected = if name == "bp-joint" { BTreeSet::from([0, 1]) } else { BTreeSet::from([1]) };
        assert_eq!(served_during[1], expected, "{name}");
    }
}

#[test]
fn lwf_distils_nothing_in_the_first_context_and_the_kept_network_on_the_next() {
    let (x, y) = toy(10);
    // Domain-incremental: both contexts share outputs 0 and 1, so the new targets and the kept
    // network's answers on the same images conflict.
    let protocol = Protocol::split(Scenario::Domain, &[0, 1, 2, 3], 2, 4).unwrap();
    let heads = (0..2).map(|c| protocol.targets_of(c)).collect::<Vec<_>>();
    assert_eq!(heads, vec![vec![0, 1], vec![0, 1]]);
    let b = ReferenceBackend;
    let lwf = BpMethod::Lwf { temperature: 2.0, scenario: Scenario::Domain, heads };
    let config = BpParams { hidden: vec![8], learning_rate: 0.05, ..BpParams::default() }.check().unwrap();
    let mut learners =
        [BpLearner::new(&b, config.clone(), lwf, 4, 2, 0), BpLearner::new(&b, config, BpMethod::Finetune, 4, 2, 0)];
    let mut source = SplitSource::new(&protocol, &x, &y);
    let items = |c: usize, k: usize| (0..6).map(|i| (c, (i + 6 * k) % 20)).collect::<Vec<_>>();
    for l in &mut learners {
        l.start_context(0).unwrap();
        for k in 0..5 {
            let (bx, by) = source.rows(&items(0, k));
            l.train_batch(&bx, &by).unwrap();
        }
        assert_eq!(l.distillation(), 0.0, "nothing to distil from in the first context");
        l.end_context(&mut ContextView { source: &mut source, context: 0 }).unwrap();
        l.start_context(1).unwrap();
    }
    let [lwf, finetune] = &mut learners;
    assert_eq!(lwf.scores(&x).unwrap(), finetune.scores(&x).unwrap(), "the first context is fine-tuning");
    let kept = lwf.scores(&source.rows(&(0..20).map(|i| (1, i)).collect::<Vec<_>>()).0).unwrap();
    // At the first update of context 1 the kept network is the network, so the soft targets equal its
    // own outputs: the distillation gradient `(s − p)/T` vanishes and the step is fine-tuning's, while
    // `L_KD` is the entropy of the soft targets, above 0.
    let (bx, by) = source.rows(&items(1, 0));
    lwf.train_batch(&bx, &by).unwrap();
    finetune.train_batch(&bx, &by).unwrap();
    assert!(lwf.distillation() > 0.1, "L_KD = {}", lwf.distillation());
    let (a, f) = (lwf.scores(&x).unwrap(), finetune.scores(&x).unwrap());
    let gap = a.as_slice().iter().zip(f.as_slice()).map(|(p, q)| (p - q).abs()).fold(0.0, f32::max);
    assert!(gap < 1e-4, "first step of context 1 differs from fine-tuning by {gap}");
    for k in 1..60 {
        let (bx, by) = source.rows(&items(1, k));
        lwf.train_batch(&bx, &by).unwrap();
        finetune.train_batch(&bx, &by).unwrap();
    }
    // What it distils: its answers on context 1's images stay closer to the kept network's than
    // fine-tuning's do.
    let (x1, _) = source.rows(&(0..20).map(|i| (1, i)).collect::<Vec<_>>());
    let head = |s: &Matrix, n: usize| 1.0 / (1.0 + ((s.get(n, 1) - s.get(n, 0)) / 2.0).exp());
    let drift = |s: &Matrix| (0..x1.rows()).map(|n| (head(s, n) - head(&kept, n)).abs()).sum::<f32>();
    let (with, without) = (drift(&lwf.scores(&x1).unwrap()), drift(&finetune.scores(&x1).unwrap()));
    assert!(with < 0.75 * without, "LwF moved its answers by {with}, fine-tuning by {without}");
}

#[test]
fn replay_holds_only_the_budget_of_past_contexts() {
    let (x, y) = toy(20);
    let protocol = Protocol::split(Scenario::Class, &[0, 1, 2, 3], 2, 4).unwrap();
    let tests = test_sets(&protocol, &x, &y);
    let b = ReferenceBackend;
    let mut learner = BpLearner::new(&b, bp_config(), BpMethod::Replay { per_class: 7 }, 4, 4, 0);
    let mut source = SplitSource::new(&protocol, &x, &y);
    let budget = Budget { iterations: 2, batch: 4, seed: 0, phases: 1 };
    run(&mut learner, &protocol, &mut source, &tests, &budget, 10, |_| {}).unwrap();
    let counts = learner.buffer().counts();
    assert_eq!(counts.len(), 4);
    assert!(counts.iter().all(|(&(c, t), &n)| n == 7 && protocol.contexts[c].classes.contains(&t)));
}

#[test]
fn ncm_cannot_forget_and_bp_finetuning_does() {
    let (x, y) = toy(20);
    let protocol = Protocol::split(Scenario::Class, &[0, 1, 2, 3], 2, 4).unwrap();
    let tests = test_sets(&protocol, &x, &y);
    let b = ReferenceBackend;
    let budget = Budget { iterations: 200, batch: 8, seed: 0, phases: 1 };
    let mut ncm = Ncm::new(&b, NcmFeatures::Pixels, 4);
    let r = run(&mut ncm, &protocol, &mut SplitSource::new(&protocol, &x, &y), &tests, &budget, 100, |_| {}).unwrap();
    // Before context 1 its classes have no mean, so they are never chosen.
    assert_eq!(r.r, vec![vec![1.0, 0.0], vec![1.0, 1.0]]);
    assert_eq!(r.metrics().forgetting, 0.0);
    let mut kwta = Ncm::new(&b, NcmFeatures::random_kwta(4, 50, 0.1, 0), 4);
    let r = run(&mut kwta, &protocol, &mut SplitSource::new(&protocol, &x, &y), &tests, &budget, 100, |_| {}).unwrap();
    assert_eq!(r.metrics().forgetting, 0.0);
    let config = BpParams { hidden: vec![8], learning_rate: 0.05, ..BpParams::default() }.check().unwrap();
    let mut bp = BpLearner::new(&b, config, BpMethod::Finetune, 4, 4, 0);
    let r = run(&mut bp, &protocol, &mut SplitSource::new(&protocol, &x, &y), &tests, &budget, 100, |_| {}).unwrap();
    assert_eq!(r.r[0][0], 1.0, "it learns the first context");
    assert!(r.r[1][0] < 0.5, "and forgets it in the class-incremental scenario: {:?}", r.r);
    assert_eq!(r.r[1][1], 1.0);
}

#[test]
fn prototypes_move_only_for_the_taught_class_and_score_untaught_outputs_never() {
    use super::methods::{PrototypeReadout, RuleLearner};
    let b = ReferenceBackend;
    let rule = bio_core::BackpropRule::<ReferenceBackend>::new(bp_config());
    let mut p = PrototypeReadout::new(RuleLearner::new(&b, rule, "bp", 4, 4, 0), 4);
    let (x, y) = toy(3);
    let first: Vec<usize> = (0..y.len()).filter(|&i| y[i] < 2).collect();
    let (x0, y0) = (x.select_rows(&first), first.iter().map(|&i| y[i]).collect::<Vec<_>>());
    p.train_batch(&x0, &y0).unwrap();
    assert_eq!(p.taught(), &[3, 3, 0, 0]);
    let s = p.scores(&x).unwrap();
    assert!((0..x.rows()).all(|n| s.get(n, 2) == f32::NEG_INFINITY && s.get(n, 0).is_finite()));
    assert_eq!(p.name(), "bp+ncm");
}

#[test]
fn each_context_budget_is_cut_into_the_phases_a_rule_sees_as_epochs() {
    struct Phases(Vec<(usize, usize, usize)>);
    impl Learner for Phases {
        fn name(&self) -> String {
            "phases".into()
        }
        fn start_phase(&mut self, phase: usize, phases: usize) {
            self.0.push((phase, phases, 0));
        }
        fn train_batch(&mut self, _x: &Matrix, _t: &[usize]) -> Result<(), EvalError> {
            self.0.last_mut().expect("a phase started first").2 += 1;
            Ok(())
        }
        fn scores(&self, x: &Matrix) -> Result<Matrix, EvalError> {
            Ok(Matrix::zeros(x.rows(), 4))
        }
    }
    let (x, y) = toy(4);
    let protocol = Protocol::split(Scenario::Class, &[0, 1, 2, 3], 2, 4).unwrap();
    let tests = test_sets(&protocol, &x, &y);
    let mut l = Phases(Vec::new());
    let budget = Budget { iterations: 6, batch: 2, seed: 0, phases: 2 };
    run(&mut l, &protocol, &mut SplitSource::new(&protocol, &x, &y), &tests, &budget, 8, |_| {}).unwrap();
    assert_eq!(l.0, vec![(0, 2, 3), (1, 2, 3), (0, 2, 3), (1, 2, 3)]);
}

#[test]
fn matrix_panels_draws_each_r_and_refuses_a_non_square_one() {
    use crate::plot::{MATRIX_CELL, TITLE_CHAR_WIDTH, matrix_panels};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.png");
    let r = vec![vec![0.9, 0.0], vec![0.5, 1.0]];
    let panels = vec![("a".to_string(), r.clone()), ("b".to_string(), r.clone()), ("c".to_string(), r)];
    let drawn = matrix_panels(&path, "R", &panels, 2).unwrap();
    assert!(path.is_file());
    assert!(drawn.width >= 2 * 2 * MATRIX_CELL && drawn.height >= 2 * 2 * MATRIX_CELL);
    // One panel under a long title: the picture widens to hold the title (when text is drawn).
    let title = "R[i][j] in % (class-IL): row i after context i, column j context j";
    let one = vec![("bio".to_string(), vec![vec![0.9, 0.0], vec![0.5, 1.0]])];
    let drawn = matrix_panels(&dir.path().join("one.png"), title, &one, 5).unwrap();
    if drawn.warning.is_none() {
        assert!(drawn.width >= TITLE_CHAR_WIDTH * title.chars().count() as u32, "{} px", drawn.width);
    }
    let bad = vec![("x".to_string(), vec![vec![0.1, 0.2]])];
    assert!(matrix_panels(&dir.path().join("bad.png"), "R", &bad, 2).is_err());
    assert!(matrix_panels(&dir.path().join("none.png"), "R", &[], 2).is_err());
}
