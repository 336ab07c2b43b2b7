use super::*;

#[test]
fn backoff_doubles_with_jitter_and_is_capped() {
    let policy = DeliveryPolicy {
        attempt_timeout: Duration::from_secs(1),
        max_attempts: 10,
        backoff_initial: Duration::from_millis(100),
        backoff_max: Duration::from_millis(1000),
    };
    for _ in 0..100 {
        let first = policy.backoff(1);
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
        let third = policy.backoff(3);
        assert!(third >= Duration::from_millis(200) && third <= Duration::from_millis(400));
        let late = policy.backoff(40);
        assert!(late >= Duration::from_millis(500) && late <= Duration::from_millis(1000));
    }
}
