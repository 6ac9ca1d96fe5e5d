//! The quickstart: `cargo run --example quickstart`.
//!
//! Runs on the embedded backend with nothing installed, or against Redis when
//! `REDIS_URL` (or `REDIS_HOST`) is set. Prints what it does.

use iftb_cache::{Bar, CacheConfig, CacheManager, Timeframe};

#[tokio::main]
async fn main() -> iftb_cache::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();

    let config = CacheConfig::from_env()?;
    println!("backend: {}", config.backend_description());
    let cache = CacheManager::connect(config).await?;

    // A day of hourly candles, as an exchange would return them.
    let start = 1_705_478_400_000_i64;
    let bars: Vec<Bar> = (0..24)
        .map(|i| {
            let open = 45_000.0 + i as f64 * 10.0;
            Bar::new(
                start + i * 3_600_000,
                open,
                open + 50.0,
                open - 40.0,
                open + 20.0,
                1_000.0 + i as f64,
            )
        })
        .collect();
    let ohlcv = cache.ohlcv();
    ohlcv.set_bars("BTCUSDT", Timeframe::H1, &bars).await?;
    println!("cached {} BTCUSDT 1h bars", bars.len());

    let newest = ohlcv
        .get_bars("BTCUSDT", Timeframe::H1, 5)
        .await?
        .unwrap_or_default();
    println!("newest 5, newest first:");
    for bar in &newest {
        println!(
            "  t={} open={} close={}",
            bar.timestamp, bar.open, bar.close
        );
    }

    // The in-progress candle updates in place: same open time, new close.
    let mut live = bars[23];
    live.close += 7.5;
    ohlcv.set_bars("BTCUSDT", Timeframe::H1, &[live]).await?;
    let latest = ohlcv.get_latest_bar("BTCUSDT", Timeframe::H1).await?;
    println!("latest bar after an update: {latest:?}");

    let window = ohlcv
        .get_range("BTCUSDT", Timeframe::H1, start, start + 2 * 3_600_000)
        .await?
        .unwrap_or_default();
    println!("first 3 hours, oldest first: {} bars", window.len());

    println!("health_check: {}", cache.health_check().await);
    println!("stats: {:?}", cache.stats());
    let removed = cache.clear_all().await?;
    println!(
        "clear_all removed {removed} keys of namespace {:?}",
        cache.config().namespace()
    );
    cache.disconnect().await;
    Ok(())
}
