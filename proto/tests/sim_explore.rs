use shoal_proto::sim::{self, Scenario};

#[test]
fn explore() {
    let which = std::env::var("SC").unwrap_or("smoke".into());
    let mut sc = match which.as_str() {
        "smoke" => Scenario::smoke(),
        "sym" => Scenario::fanout_sym(),
        "up" => Scenario::fanout_upbound(),
        _ => panic!(),
    };
    if let Ok(p) = std::env::var("PIECE") {
        sc.piece_size = p.parse::<u32>().unwrap() * 1024;
    }
    if let Ok(p) = std::env::var("SLOTS") {
        sc.upload.max_active = p.parse().unwrap();
    }

    if let Ok(p) = std::env::var("STARVE") {
        sc.download.seed_starve_in_flight = p.parse().unwrap();
    }
    if let Ok(p) = std::env::var("LAT") {
        sc.download.target_latency = std::time::Duration::from_millis(p.parse().unwrap());
    }
    if let Ok(p) = std::env::var("MAXD") {
        sc.download.max_depth = p.parse().unwrap();
    }
    if let Ok(p) = std::env::var("MIND") {
        sc.download.min_depth = p.parse().unwrap();
    }
    if let Ok(p) = std::env::var("SSLOTS") {
        sc.seed_upload.max_active = p.parse().unwrap();
    }

    if let Ok(p) = std::env::var("EXTRA") {
        sc.download.extra_in_flight = p.parse().unwrap();
    }
    if let Ok(p) = std::env::var("NORATE") {
        let _ = p;
        sc.download.download_rate = None;
    }
    if let Ok(p) = std::env::var("SEED") {
        sc.rng_seed = p.parse().unwrap();
    }
    if let Ok(p) = std::env::var("LINK") {
        sc.latency = std::time::Duration::from_millis(p.parse().unwrap());
    }
    if let Ok(p) = std::env::var("BACKOFF") {
        sc.download.busy_backoff = std::time::Duration::from_millis(p.parse().unwrap());
    }
    if let Ok(p) = std::env::var("SPARE") {
        sc.upload.max_active_spare = p.parse().unwrap();
    }
    if let Ok(p) = std::env::var("MAXWAIT") {
        sc.download.max_waiting = p.parse().unwrap();
    }
    if let Ok(p) = std::env::var("RESERVE") {
        sc.upload.reserve_for = std::time::Duration::from_millis(p.parse().unwrap());
        sc.seed_upload.reserve_for = sc.upload.reserve_for;
    }
    if let Ok(p) = std::env::var("STARVERATE") {
        sc.download.seed_starve_rate = p.parse().unwrap();
    }
    if let Ok(p) = std::env::var("QUANTUM") {
        sc.rate_quantum = std::time::Duration::from_micros(p.parse().unwrap());
    }
    let t = std::time::Instant::now();
    let r = sim::run(&sc);
    println!("{r}");
    println!("wall {:?}", t.elapsed());
}

#[test]
fn timeline() {
    let which = std::env::var("SC").unwrap_or("smoke".into());
    let mut sc = match which.as_str() {
        "smoke" => Scenario::smoke(),
        "sym" => Scenario::fanout_sym(),
        "up" => Scenario::fanout_upbound(),
        _ => panic!(),
    };
    if let Ok(p) = std::env::var("SLOTS") {
        sc.upload.max_active = p.parse().unwrap();
    }

    if let Ok(p) = std::env::var("BACKOFF") {
        sc.download.busy_backoff = std::time::Duration::from_millis(p.parse().unwrap());
    }
    if let Ok(p) = std::env::var("MAXBACKOFF") {
        sc.download.max_backoff = std::time::Duration::from_millis(p.parse().unwrap());
    }
    if let Ok(p) = std::env::var("WINDOW") {
        sc.download.window = p.parse().unwrap();
    }
    if let Ok(p) = std::env::var("MAXD") {
        sc.download.max_depth = p.parse().unwrap();
    }
    if let Ok(p) = std::env::var("PIECE") {
        sc.piece_size = p.parse::<u32>().unwrap() * 1024;
    }
    if let Ok(p) = std::env::var("EVERY") {
        sc.sample_every = std::time::Duration::from_millis(p.parse().unwrap());
    }
    let r = sim::run(&sc);
    for s in &r.samples {
        println!(
            "t={:5.1} seed={:5.2} up={:6.2} down={:6.2} done={}",
            s.t,
            s.seed_up / sim::MIB,
            s.peers_up / sim::MIB,
            s.peers_down / sim::MIB,
            s.done
        );
    }
    println!("{r}");
}

#[test]
fn stream() {
    let mut sc = Scenario::smoke();
    if let Ok(p) = std::env::var("WINDOW") {
        sc.download.window = p.parse().unwrap();
    }
    let r = sim::run(&sc);
    for i in 0..r.peers {
        println!(
            "peer {i} first={:?} half/done={:.2} done={:?}",
            r.first_byte[i],
            r.half_stream[i].unwrap() / r.completion[i].unwrap(),
            r.completion[i]
        );
    }
    println!("{r}");
}

#[test]
fn ample() {
    let mut sc = Scenario::new("ample-upload", 20, 32.0, 16.0, 8.0, 4.0);
    if let Ok(p) = std::env::var("STARVE") {
        sc.download.seed_starve_in_flight = p.parse().unwrap();
    }
    if let Ok(p) = std::env::var("STARVERATE") {
        sc.download.seed_starve_rate = p.parse().unwrap();
    }
    let r = sim::run(&sc);
    println!("{r}");
}
