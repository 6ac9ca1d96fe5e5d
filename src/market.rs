//! `MarketDataCache`: tickers, funding rates and the Fear & Greed index, one
//! key each, rkyv-encoded behind the codec header. Batch reads are one MGET
//! and batch writes one pipeline, whatever the number of symbols.

use crate::client::check_ttl;
use crate::codec;
use crate::config::DataType;
use crate::error::{Error, Result};
use crate::manager::Shared;
use crate::model::{FearGreed, FearGreedClass, Ticker};
use bytes::Bytes;
use std::time::Duration;

/// Most symbols one batch call may name: bounds the size of one command and reply.
pub const MAX_SYMBOLS_PER_CALL: usize = 10_000;

/// The market data cache, from [`CacheManager::market`](crate::CacheManager::market).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> iftb_cache::Result<()> {
/// use iftb_cache::{CacheConfig, CacheManager};
/// let cache = CacheManager::connect(CacheConfig::embedded()).await?;
/// cache.market().set_funding_rate("BTCUSDT", 0.0001).await?;
/// let rates = cache.market().get_funding_rates(&["BTCUSDT", "ETHUSDT"]).await?;
/// assert_eq!(rates, vec![Some(0.0001), None]);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Copy)]
pub struct MarketDataCache<'a> {
    shared: &'a Shared,
}

impl<'a> MarketDataCache<'a> {
    pub(crate) fn new(shared: &'a Shared) -> Self {
        Self { shared }
    }

    /// Caches the ticker of `symbol` with the default ticker TTL (10 s).
    ///
    /// `symbol` names the key; `ticker.symbol` is stored as given (an exchange
    /// may spell it `BTC/USDT` where the key says `BTCUSDT`).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a bad symbol
    /// or ticker (see [`Ticker::validate`]), and nothing is written; connection,
    /// timeout or server errors otherwise.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> iftb_cache::Result<()> {
    /// use iftb_cache::{CacheConfig, CacheManager, Ticker};
    /// let cache = CacheManager::connect(CacheConfig::embedded()).await?;
    /// let ticker = Ticker {
    ///     symbol: "BTCUSDT".into(), bid: 45_100.0, ask: 45_110.0, last: 45_105.0,
    ///     volume_24h: 15_000.0, change_24h: 2.5, high_24h: 45_800.0, low_24h: 43_900.0,
    ///     timestamp: 1_705_478_400_000,
    /// };
    /// cache.market().set_ticker("BTCUSDT", &ticker).await?;
    /// assert_eq!(cache.market().get_ticker("BTCUSDT").await?, Some(ticker));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn set_ticker(&self, symbol: &str, ticker: &Ticker) -> Result<()> {
        self.set_ticker_with_ttl(symbol, ticker, self.ttl(DataType::Ticker))
            .await
    }

    /// As [`set_ticker`](Self::set_ticker), expiring after `ttl`.
    ///
    /// # Errors
    ///
    /// As [`set_ticker`](Self::set_ticker); a TTL under 1 ms is invalid input.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> iftb_cache::Result<()> {
    /// # use iftb_cache::*;
    /// # let cache = CacheManager::connect(CacheConfig::embedded()).await?;
    /// # let ticker = Ticker { symbol: "BTCUSDT".into(), bid: 1.0, ask: 1.0, last: 1.0, volume_24h: 1.0,
    /// #     change_24h: 0.0, high_24h: 1.0, low_24h: 1.0, timestamp: 1_705_478_400_000 };
    /// let ttl = std::time::Duration::from_secs(2);
    /// cache.market().set_ticker_with_ttl("BTCUSDT", &ticker, ttl).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn set_ticker_with_ttl(
        &self,
        symbol: &str,
        ticker: &Ticker,
        ttl: Duration,
    ) -> Result<()> {
        let key = self.shared.keys.ticker(symbol)?;
        ticker.validate()?;
        check_ttl(ttl)?;
        self.write_one("set_ticker", &key, codec::encode(ticker), ttl)
            .await
    }

    /// The cached ticker of `symbol`; `None` when nothing is cached.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a bad symbol;
    /// [`ErrorKind::Codec`](crate::ErrorKind::Codec) for a corrupt or foreign value;
    /// connection, timeout or server errors.
    ///
    /// # Examples
    ///
    /// See [`set_ticker`](Self::set_ticker).
    pub async fn get_ticker(&self, symbol: &str) -> Result<Option<Ticker>> {
        let key = self.shared.keys.ticker(symbol)?;
        self.read_one("get_ticker", &key, decode_ticker).await
    }

    /// Caches many tickers, each under its own `symbol` field, with the default
    /// ticker TTL, in one pipelined round trip. A symbol given twice keeps the
    /// last ticker given.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for any bad
    /// ticker (the message names its index) or more than
    /// [`MAX_SYMBOLS_PER_CALL`] tickers, and nothing is written; connection,
    /// timeout or server errors otherwise, after which some may have landed.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> iftb_cache::Result<()> {
    /// use iftb_cache::{CacheConfig, CacheManager, Ticker};
    /// let cache = CacheManager::connect(CacheConfig::embedded()).await?;
    /// let t = |symbol: &str, last: f64| Ticker {
    ///     symbol: symbol.into(), bid: last, ask: last, last, volume_24h: 1.0,
    ///     change_24h: 0.0, high_24h: last, low_24h: last, timestamp: 1_705_478_400_000,
    /// };
    /// cache.market().set_tickers(&[t("BTCUSDT", 45_000.0), t("ETHUSDT", 2_500.0)]).await?;
    /// let got = cache.market().get_tickers(&["ETHUSDT", "SOLUSDT", "BTCUSDT"]).await?;
    /// let last: Vec<Option<f64>> = got.iter().map(|t| t.as_ref().map(|t| t.last)).collect();
    /// assert_eq!(last, vec![Some(2_500.0), None, Some(45_000.0)]);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn set_tickers(&self, tickers: &[Ticker]) -> Result<()> {
        self.set_tickers_with_ttl(tickers, self.ttl(DataType::Ticker))
            .await
    }

    /// As [`set_tickers`](Self::set_tickers), expiring after `ttl`.
    ///
    /// # Errors
    ///
    /// As [`set_tickers`](Self::set_tickers); a TTL under 1 ms is invalid input.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> iftb_cache::Result<()> {
    /// # use iftb_cache::*;
    /// # let cache = CacheManager::connect(CacheConfig::embedded()).await?;
    /// # let ticker = Ticker { symbol: "BTCUSDT".into(), bid: 1.0, ask: 1.0, last: 1.0, volume_24h: 1.0,
    /// #     change_24h: 0.0, high_24h: 1.0, low_24h: 1.0, timestamp: 1_705_478_400_000 };
    /// let ttl = std::time::Duration::from_secs(2);
    /// cache.market().set_tickers_with_ttl(&[ticker], ttl).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn set_tickers_with_ttl(&self, tickers: &[Ticker], ttl: Duration) -> Result<()> {
        check_batch(tickers.len())?;
        check_ttl(ttl)?;
        let items = tickers
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let key = self.shared.keys.ticker(&t.symbol);
                let valid = key.and_then(|key| t.validate().map(|()| key));
                let key = valid.map_err(|e| Error::invalid(format!("tickers[{i}]: {e}")))?;
                Ok((key, codec::encode(t)))
            })
            .collect::<Result<Vec<_>>>()?;
        self.write_many("set_tickers", &items, ttl).await
    }

    /// The cached ticker of each symbol, in order (`None` where nothing is
    /// cached), in one MGET round trip.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a bad symbol
    /// or more than [`MAX_SYMBOLS_PER_CALL`] of them; otherwise as
    /// [`get_ticker`](Self::get_ticker), for the whole call.
    ///
    /// # Examples
    ///
    /// See [`set_tickers`](Self::set_tickers).
    pub async fn get_tickers<S: AsRef<str>>(&self, symbols: &[S]) -> Result<Vec<Option<Ticker>>> {
        let keys = self.batch_keys(symbols, |s| self.shared.keys.ticker(s))?;
        self.read_many("get_tickers", &keys, decode_ticker).await
    }

    /// Caches the funding rate of `symbol` (a fraction per funding interval,
    /// such as `0.0001`) with the default funding TTL (60 s).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a bad symbol
    /// or a rate that is not finite, and nothing is written; connection, timeout
    /// or server errors otherwise.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> iftb_cache::Result<()> {
    /// let cache = iftb_cache::CacheManager::connect(iftb_cache::CacheConfig::embedded()).await?;
    /// cache.market().set_funding_rate("BTCUSDT", 0.0001).await?;
    /// assert_eq!(cache.market().get_funding_rate("BTCUSDT").await?, Some(0.0001));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn set_funding_rate(&self, symbol: &str, rate: f64) -> Result<()> {
        self.set_funding_rate_with_ttl(symbol, rate, self.ttl(DataType::FundingRate))
            .await
    }

    /// As [`set_funding_rate`](Self::set_funding_rate), expiring after `ttl`.
    ///
    /// # Errors
    ///
    /// As [`set_funding_rate`](Self::set_funding_rate); a TTL under 1 ms is invalid input.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> iftb_cache::Result<()> {
    /// # use iftb_cache::*;
    /// # let cache = CacheManager::connect(CacheConfig::embedded()).await?;
    /// let ttl = std::time::Duration::from_secs(8 * 3_600);
    /// cache.market().set_funding_rate_with_ttl("BTCUSDT", 0.0001, ttl).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn set_funding_rate_with_ttl(
        &self,
        symbol: &str,
        rate: f64,
        ttl: Duration,
    ) -> Result<()> {
        let key = self.shared.keys.funding(symbol)?;
        check_rate(rate)?;
        check_ttl(ttl)?;
        self.write_one("set_funding_rate", &key, codec::encode(&rate), ttl)
            .await
    }

    /// The cached funding rate of `symbol`; `None` when nothing is cached.
    ///
    /// # Errors
    ///
    /// As [`get_ticker`](Self::get_ticker).
    ///
    /// # Examples
    ///
    /// See [`set_funding_rate`](Self::set_funding_rate).
    pub async fn get_funding_rate(&self, symbol: &str) -> Result<Option<f64>> {
        let key = self.shared.keys.funding(symbol)?;
        self.read_one("get_funding_rate", &key, decode_rate).await
    }

    /// Caches many `(symbol, rate)` pairs with the default funding TTL, in one
    /// pipelined round trip (exchanges report every symbol's rate at once).
    ///
    /// # Errors
    ///
    /// As [`set_tickers`](Self::set_tickers): any bad pair is invalid input and
    /// nothing is written.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> iftb_cache::Result<()> {
    /// let cache = iftb_cache::CacheManager::connect(iftb_cache::CacheConfig::embedded()).await?;
    /// cache.market().set_funding_rates(&[("BTCUSDT", 0.0001), ("ETHUSDT", -0.0002)]).await?;
    /// let rates = cache.market().get_funding_rates(&["ETHUSDT", "BTCUSDT"]).await?;
    /// assert_eq!(rates, vec![Some(-0.0002), Some(0.0001)]);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn set_funding_rates<S: AsRef<str>>(&self, rates: &[(S, f64)]) -> Result<()> {
        self.set_funding_rates_with_ttl(rates, self.ttl(DataType::FundingRate))
            .await
    }

    /// As [`set_funding_rates`](Self::set_funding_rates), expiring after `ttl`.
    ///
    /// # Errors
    ///
    /// As [`set_funding_rates`](Self::set_funding_rates); a TTL under 1 ms is invalid input.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> iftb_cache::Result<()> {
    /// # use iftb_cache::*;
    /// # let cache = CacheManager::connect(CacheConfig::embedded()).await?;
    /// let ttl = std::time::Duration::from_secs(8 * 3_600);
    /// cache.market().set_funding_rates_with_ttl(&[("BTCUSDT", 0.0001)], ttl).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn set_funding_rates_with_ttl<S: AsRef<str>>(
        &self,
        rates: &[(S, f64)],
        ttl: Duration,
    ) -> Result<()> {
        check_batch(rates.len())?;
        check_ttl(ttl)?;
        let items = rates
            .iter()
            .enumerate()
            .map(|(i, (symbol, rate))| {
                let key = self.shared.keys.funding(symbol.as_ref());
                let valid = key.and_then(|key| check_rate(*rate).map(|()| key));
                let key = valid.map_err(|e| Error::invalid(format!("rates[{i}]: {e}")))?;
                Ok((key, codec::encode(rate)))
            })
            .collect::<Result<Vec<_>>>()?;
        self.write_many("set_funding_rates", &items, ttl).await
    }

    /// The cached funding rate of each symbol, in order, in one MGET round trip.
    ///
    /// # Errors
    ///
    /// As [`get_tickers`](Self::get_tickers).
    ///
    /// # Examples
    ///
    /// See [`set_funding_rates`](Self::set_funding_rates).
    pub async fn get_funding_rates<S: AsRef<str>>(
        &self,
        symbols: &[S],
    ) -> Result<Vec<Option<f64>>> {
        let keys = self.batch_keys(symbols, |s| self.shared.keys.funding(s))?;
        self.read_many("get_funding_rates", &keys, decode_rate)
            .await
    }

    /// Caches the Fear & Greed reading with the default TTL (300 s).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput), and nothing is
    /// written, for a value over 100, a timestamp out of range, or a
    /// classification that contradicts the value (see [`check_fear_greed`]);
    /// connection, timeout or server errors otherwise.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> iftb_cache::Result<()> {
    /// use iftb_cache::{CacheConfig, CacheManager, FearGreed, FearGreedClass};
    /// let cache = CacheManager::connect(CacheConfig::embedded()).await?;
    /// let fg = FearGreed { value: 45, classification: FearGreedClass::Fear, timestamp: 1_705_478_400_000 };
    /// cache.market().set_fear_greed(&fg).await?;
    /// assert_eq!(cache.market().get_fear_greed().await?, Some(fg));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn set_fear_greed(&self, reading: &FearGreed) -> Result<()> {
        self.set_fear_greed_with_ttl(reading, self.ttl(DataType::FearGreed))
            .await
    }

    /// As [`set_fear_greed`](Self::set_fear_greed), expiring after `ttl`.
    ///
    /// # Errors
    ///
    /// As [`set_fear_greed`](Self::set_fear_greed); a TTL under 1 ms is invalid input.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> iftb_cache::Result<()> {
    /// # use iftb_cache::*;
    /// # let cache = CacheManager::connect(CacheConfig::embedded()).await?;
    /// let fg = FearGreed { value: 20, classification: FearGreedClass::ExtremeFear, timestamp: 0 };
    /// let ttl = std::time::Duration::from_secs(24 * 3_600);
    /// cache.market().set_fear_greed_with_ttl(&fg, ttl).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn set_fear_greed_with_ttl(&self, reading: &FearGreed, ttl: Duration) -> Result<()> {
        check_fear_greed(reading)?;
        check_ttl(ttl)?;
        let key = self.shared.keys.fear_greed();
        self.write_one("set_fear_greed", &key, codec::encode(reading), ttl)
            .await
    }

    /// The cached Fear & Greed reading; `None` when nothing is cached.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Codec`](crate::ErrorKind::Codec) for a corrupt or foreign value;
    /// connection, timeout or server errors.
    ///
    /// # Examples
    ///
    /// See [`set_fear_greed`](Self::set_fear_greed).
    pub async fn get_fear_greed(&self) -> Result<Option<FearGreed>> {
        let key = self.shared.keys.fear_greed();
        self.read_one("get_fear_greed", &key, decode_fear_greed)
            .await
    }

    fn ttl(&self, data: DataType) -> Duration {
        self.shared.config.ttl(data)
    }

    /// The keys of a batch read, every symbol checked before anything is sent.
    fn batch_keys<S: AsRef<str>>(
        &self,
        symbols: &[S],
        key: impl Fn(&str) -> Result<String>,
    ) -> Result<Vec<String>> {
        check_batch(symbols.len())?;
        symbols.iter().map(|s| key(s.as_ref())).collect()
    }

    async fn write_one(&self, op: &str, key: &str, value: Bytes, ttl: Duration) -> Result<()> {
        let result = self.shared.backend.set(key, value, Some(ttl)).await;
        self.shared.observe_write(op, key, result)
    }

    async fn write_many(&self, op: &str, items: &[(String, Bytes)], ttl: Duration) -> Result<()> {
        let result = self.shared.backend.set_many(items, ttl).await;
        self.shared.observe_write(op, "", result)
    }

    /// Reads and decodes one value, counting a hit or a miss (fail-open mode
    /// turns an unavailable backend or an undecodable value into a miss).
    async fn read_one<T>(
        &self,
        op: &str,
        key: &str,
        decode: fn(&[u8]) -> Result<T>,
    ) -> Result<Option<T>> {
        let result = self.shared.backend.get(key).await;
        let value = self.shared.observe_read(op, key, result, || None)?;
        let decoded = value.map(|v| decode(&v)).transpose();
        let decoded = self.shared.observe_read(op, key, decoded, || None)?;
        self.shared.record_read(key, decoded.is_some());
        Ok(decoded)
    }

    /// One MGET for every key. A value that cannot be decoded fails the whole
    /// call, or reads as a miss in fail-open mode.
    async fn read_many<T>(
        &self,
        op: &str,
        keys: &[String],
        decode: fn(&[u8]) -> Result<T>,
    ) -> Result<Vec<Option<T>>> {
        let result = self.shared.backend.mget(keys).await;
        let misses = || vec![None; keys.len()];
        let values = self.shared.observe_read(op, "", result, misses)?;
        keys.iter()
            .zip(values)
            .map(|(key, value)| {
                let decoded = value.map(|v| decode(&v)).transpose();
                let decoded = self.shared.observe_read(op, key, decoded, || None)?;
                self.shared.record_read(key, decoded.is_some());
                Ok(decoded)
            })
            .collect()
    }
}

// Stored values are checked as the writes check them: a record that decodes
// but holds what no write accepts (a NaN price, a value over 100) is corrupt.

fn decode_ticker(bytes: &[u8]) -> Result<Ticker> {
    let ticker = codec::decode::<Ticker>(bytes)?;
    ticker.validate().map_err(corrupt)?;
    Ok(ticker)
}

fn decode_rate(bytes: &[u8]) -> Result<f64> {
    let rate = codec::decode::<f64>(bytes)?;
    check_rate(rate).map_err(corrupt)?;
    Ok(rate)
}

fn decode_fear_greed(bytes: &[u8]) -> Result<FearGreed> {
    let reading = codec::decode::<FearGreed>(bytes)?;
    check_fear_greed(&reading).map_err(corrupt)?;
    Ok(reading)
}

fn corrupt(e: Error) -> Error {
    Error::codec(format!("stored value is corrupt: {e}"))
}

fn check_batch(n: usize) -> Result<()> {
    if n > MAX_SYMBOLS_PER_CALL {
        return Err(Error::invalid(format!(
            "{n} symbols in one call; the limit is {MAX_SYMBOLS_PER_CALL}"
        )));
    }
    Ok(())
}

fn check_rate(rate: f64) -> Result<()> {
    if !rate.is_finite() {
        return Err(Error::invalid(format!(
            "funding rate is not finite: {rate}"
        )));
    }
    Ok(())
}

/// Checks a Fear & Greed reading: [`FearGreed::validate`], then that the
/// classification does not contradict the value.
///
/// Publishers draw the class boundaries differently (alternative.me, CMC and
/// CNN disagree by up to 10 points), so each class accepts the union of the
/// published bands: Extreme Fear 0..=25, Fear 20..=49, Neutral 40..=60,
/// Greed 50..=80, Extreme Greed 75..=100. "Extreme Fear" at 90 is rejected;
/// "Fear" at 48 is not.
///
/// # Errors
///
/// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) naming the problem.
///
/// # Examples
///
/// ```
/// use iftb_cache::{check_fear_greed, FearGreed, FearGreedClass};
/// let fg = |value, classification| FearGreed { value, classification, timestamp: 0 };
/// assert!(check_fear_greed(&fg(48, FearGreedClass::Fear)).is_ok());
/// assert!(check_fear_greed(&fg(90, FearGreedClass::ExtremeFear)).is_err());
/// assert!(check_fear_greed(&fg(101, FearGreedClass::ExtremeGreed)).is_err());
/// ```
pub fn check_fear_greed(reading: &FearGreed) -> Result<()> {
    reading.validate()?;
    let band = match reading.classification {
        FearGreedClass::ExtremeFear => 0..=25,
        FearGreedClass::Fear => 20..=49,
        FearGreedClass::Neutral => 40..=60,
        FearGreedClass::Greed => 50..=80,
        FearGreedClass::ExtremeGreed => 75..=100,
    };
    if !band.contains(&reading.value) {
        return Err(Error::invalid(format!(
            "fear & greed value {} contradicts its classification {:?} ({}..={})",
            reading.value,
            reading.classification.as_str(),
            band.start(),
            band.end()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fg(value: u8, classification: FearGreedClass) -> FearGreed {
        FearGreed {
            value,
            classification,
            timestamp: 0,
        }
    }

    #[test]
    fn every_value_has_an_accepted_class_and_bands_reject_contradictions() {
        use FearGreedClass::*;
        let classes = [ExtremeFear, Fear, Neutral, Greed, ExtremeGreed];
        for v in 0..=100 {
            let ok = classes
                .iter()
                .filter(|&&c| check_fear_greed(&fg(v, c)).is_ok());
            assert!(ok.count() >= 1, "value {v} fits no class");
        }
        for (v, c) in [
            (90, ExtremeFear),
            (10, Greed),
            (70, Fear),
            (5, Neutral),
            (30, ExtremeGreed),
        ] {
            let err = check_fear_greed(&fg(v, c)).unwrap_err();
            assert!(
                err.is_invalid_input() && err.to_string().contains("contradicts"),
                "{err}"
            );
        }
    }

    #[test]
    fn alternative_me_boundaries_are_accepted() {
        use FearGreedClass::*;
        for (v, c) in [
            (24, ExtremeFear),
            (25, Fear),
            (46, Fear),
            (47, Neutral),
            (54, Neutral),
        ] {
            assert!(check_fear_greed(&fg(v, c)).is_ok(), "{v} {c:?}");
        }
        for (v, c) in [
            (55, Greed),
            (75, Greed),
            (76, ExtremeGreed),
            (100, ExtremeGreed),
        ] {
            assert!(check_fear_greed(&fg(v, c)).is_ok(), "{v} {c:?}");
        }
    }

    #[test]
    fn non_finite_rates_and_oversized_batches_are_rejected() {
        for r in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert!(check_rate(r).unwrap_err().is_invalid_input());
        }
        assert!(check_rate(-0.0075).is_ok());
        assert!(check_batch(MAX_SYMBOLS_PER_CALL).is_ok());
        assert!(check_batch(MAX_SYMBOLS_PER_CALL + 1).is_err());
    }
}
