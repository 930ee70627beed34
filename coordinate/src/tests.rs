//! The distance's properties, the client's refusals, and convergence on synthetic round-trip matrices.

use super::*;
use proptest::prelude::*;

fn coordinate(vec: Vec<f64>, error: f64, adjustment: f64, height: f64) -> Coordinate {
    Coordinate { vec, error, adjustment, height }
}

fn finite_coordinate() -> impl Strategy<Value = Coordinate> {
    (proptest::collection::vec(-10.0f64..10.0, 8), 0.0f64..1.5, -0.1f64..0.1, 1.0e-5f64..1.0)
        .prop_map(|(vec, error, adjustment, height)| coordinate(vec, error, adjustment, height))
}

proptest! {
    #[test]
    fn distance_is_symmetric_and_never_negative(a in finite_coordinate(), b in finite_coordinate()) {
        let ab = a.distance_to(&b);
        prop_assert_eq!(ab, b.distance_to(&a));
        let seconds = a.distance_seconds(&b).unwrap();
        prop_assert!(seconds >= 0.0, "{seconds}");
    }

    #[test]
    fn a_coordinate_with_a_non_finite_component_is_refused(
        good in finite_coordinate(),
        which in 0usize..11,
        bad in prop_oneof![Just(f64::NAN), Just(f64::INFINITY), Just(f64::NEG_INFINITY)],
    ) {
        let mut other = good.clone();
        match which {
            0..=7 => other.vec[which] = bad,
            8 => other.error = bad,
            9 => other.adjustment = bad,
            _ => other.height = bad,
        }
        prop_assert_eq!(other.check(8), Err(Error::Invalid));
        let mut client = Client::new(Config::default(), 1);
        let before = client.coordinate().clone();
        prop_assert_eq!(client.update("b", &other, Duration::from_millis(5)), Err(Error::Invalid));
        prop_assert_eq!(client.coordinate(), &before, "a refused update changes nothing");
        prop_assert_eq!(client.set_coordinate(other), Err(Error::Invalid));
    }
}

#[test]
fn json_uses_consuls_field_names() {
    let c = Coordinate::new(&Config::default());
    let json = serde_json::to_value(&c).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"Vec": [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], "Error": 1.5, "Adjustment": 0.0, "Height": 1.0e-5})
    );
    assert_eq!(serde_json::from_value::<Coordinate>(json).unwrap(), c);
}

#[test]
fn a_new_coordinate_is_twice_the_minimum_height_from_another() {
    let config = Config::default();
    let a = Coordinate::new(&config);
    assert_eq!(a.distance_to(&a), Duration::from_nanos(20_000));
}

#[test]
fn incompatible_dimensions_and_out_of_range_rtts_are_refused() {
    let mut client = Client::new(Config::default(), 7);
    let short = coordinate(vec![0.0; 4], 1.5, 0.0, 1.0e-5);
    assert_eq!(client.update("b", &short, Duration::from_millis(1)), Err(Error::Dimensionality { ours: 8, theirs: 4 }));
    assert_eq!(Coordinate::new(&Config::default()).distance_to(&short), Duration::MAX);
    let other = Coordinate::new(&Config::default());
    assert_eq!(client.update("b", &other, Duration::from_secs(11)), Err(Error::Rtt(Duration::from_secs(11))));
    assert!(client.update("b", &other, Duration::ZERO).is_ok(), "a zero RTT (coarse clocks) is taken");
}

#[test]
fn the_latency_filter_takes_the_median_of_the_last_three() {
    let mut client = Client::new(Config::default(), 3);
    assert_eq!(client.latency_filter("b", 0.201), 0.201);
    assert_eq!(client.latency_filter("b", 0.200), 0.201);
    assert_eq!(client.latency_filter("b", 0.207), 0.201);
    // The first sample falls out of the window of three.
    assert_eq!(client.latency_filter("b", 1.9), 0.207);
    assert_eq!(client.latency_filter("b", 0.203), 0.207);
    assert_eq!(client.latency_filter("b", 0.199), 0.203);
    assert_eq!(client.latency_filter("c", 0.5), 0.5, "samples are per node");
    client.forget_node("b");
    assert_eq!(client.latency_filter("b", 0.3), 0.3);
}

#[test]
fn coincident_coordinates_move_apart_in_a_direction_the_seed_decides() {
    let other = Coordinate::new(&Config::default());
    let run = |seed| {
        let mut client = Client::new(Config::default(), seed);
        client.update("b", &other, Duration::from_millis(10)).unwrap().clone()
    };
    let (a, b, c) = (run(1), run(1), run(2));
    assert_eq!(a, b, "same seed, same direction");
    assert_ne!(a.vec, c.vec);
    assert!(a.distance_seconds(&other).unwrap() > 1.0e-3, "the update pushed it away: {a:?}");
}

/// Runs `cycles` rounds in which every node measures the true RTT to one other node (chosen by a seeded
/// generator) and updates; returns the average and worst relative error of all pairwise estimates.
fn simulate(truth: &[Vec<f64>], cycles: usize) -> (f64, f64) {
    let n = truth.len();
    let mut clients: Vec<Client> = (0..n).map(|i| Client::new(Config::default(), i as u64)).collect();
    let mut pick = SplitMix(42);
    for _ in 0..cycles {
        for i in 0..n {
            let j = (i + 1 + (pick.next_u64() as usize % (n - 1))) % n;
            let other = clients[j].coordinate().clone();
            let rtt = Duration::from_secs_f64(truth[i][j]);
            clients[i].update(&format!("node{j}"), &other, rtt).unwrap();
        }
    }
    let (mut sum, mut max, mut count) = (0.0, 0.0f64, 0.0);
    for i in 0..n {
        for j in i + 1..n {
            let estimate = clients[i].coordinate().distance_seconds(clients[j].coordinate()).unwrap();
            let error = (estimate - truth[i][j]).abs() / truth[i][j];
            sum += error;
            max = max.max(error);
            count += 1.0;
        }
    }
    (sum / count, max)
}

#[test]
fn coordinates_converge_on_a_grid() {
    // 25 nodes on a 5×5 grid with 10 ms between neighbours (Serf's grid scenario).
    let n = 25;
    let truth: Vec<Vec<f64>> = (0..n)
        .map(|i| {
            (0..n)
                .map(|j| {
                    let (dx, dy) = ((i % 5) as f64 - (j % 5) as f64, (i / 5) as f64 - (j / 5) as f64);
                    0.010 * (dx * dx + dy * dy).sqrt()
                })
                .collect()
        })
        .collect();
    let (avg, max) = simulate(&truth, 1000);
    assert!(avg < 0.01 && max < 0.05, "average {avg}, worst {max}");
}

#[test]
fn coordinates_learn_one_slow_access_link() {
    // Five nodes 1 ms apart, except that node 4 sits behind a 20 ms link: its height must take the difference.
    let n = 5;
    let truth: Vec<Vec<f64>> = (0..n)
        .map(|i| {
            (0..n)
                .map(|j| {
                    let slow = if i == 4 || j == 4 { 0.020 } else { 0.0 };
                    0.001 + slow
                })
                .collect()
        })
        .collect();
    let (avg, max) = simulate(&truth, 500);
    assert!(avg < 0.01 && max < 0.05, "average {avg}, worst {max}");
}
