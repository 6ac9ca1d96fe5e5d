//! `MarketDataCache`: tickers, funding rates and the Fear & Greed index, one
//! key each, rkyv-encoded behind the codec header. Batch reads are one MGET
//! and batch writes one pipeline, whatever the number of symbols.

use crate::codec::{self, DecodeValid};
use crate::config::DataType;
use crate::error::{Error, Result};
use crate::limits::check_batch;
use crate::model::{validate_funding_rate, FearGreed, Ticker};
use crate::options::WriteOptions;
use crate::shared::Shared;
use crate::stats::Op;
use bytes::Bytes;

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
        self.set_ticker_with(symbol, ticker, WriteOptions::new())
            .await
    }

    /// As [`set_ticker`](Self::set_ticker), with options: a TTL of its own.
    ///
    /// # Errors
    ///
    /// As [`set_ticker`](Self::set_ticker); a TTL under 1 ms or over
    /// [`MAX_TTL`](crate::MAX_TTL) is invalid input.
    ///
    /// # Examples
    ///
    /// See [`WriteOptions`].
    pub async fn set_ticker_with(
        &self,
        symbol: &str,
        ticker: &Ticker,
        options: WriteOptions,
    ) -> Result<()> {
        let _call = self.shared.call(Op::SetTicker);
        let key = self.shared.keys.ticker(symbol)?;
        ticker.validate()?;
        let ttl = options.ttl_for(&self.shared.config, DataType::Ticker)?;
        self.shared
            .write_value(Op::SetTicker, &key, codec::encode(ticker), Some(ttl))
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
        let _call = self.shared.call(Op::GetTicker);
        let key = self.shared.keys.ticker(symbol)?;
        self.read_one(Op::GetTicker, &key).await
    }

    /// Caches many tickers, each under its own `symbol` field, with the default
    /// ticker TTL, in one pipelined round trip. A symbol given twice keeps the
    /// last ticker given.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for any bad
    /// ticker (the message names its index) or more than
    /// [`MAX_SYMBOLS_PER_CALL`](crate::MAX_SYMBOLS_PER_CALL) tickers, and nothing is written; connection,
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
        self.set_tickers_with(tickers, WriteOptions::new()).await
    }

    /// As [`set_tickers`](Self::set_tickers), with options: a TTL of its own.
    ///
    /// # Errors
    ///
    /// As [`set_tickers`](Self::set_tickers); a TTL under 1 ms or over
    /// [`MAX_TTL`](crate::MAX_TTL) is invalid input.
    ///
    /// # Examples
    ///
    /// See [`WriteOptions`].
    pub async fn set_tickers_with(&self, tickers: &[Ticker], options: WriteOptions) -> Result<()> {
        let _call = self.shared.call(Op::SetTickers);
        check_batch(tickers.len())?;
        let ttl = options.ttl_for(&self.shared.config, DataType::Ticker)?;
        let items = batch_entries("tickers", tickers, |t| {
            let key = self.shared.keys.ticker(&t.symbol)?;
            t.validate()?;
            Ok((key, codec::encode(t)))
        })?;
        self.shared.write_values(Op::SetTickers, &items, ttl).await
    }

    /// The cached ticker of each symbol, in order (`None` where nothing is
    /// cached), in one MGET round trip.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a bad symbol
    /// or more than [`MAX_SYMBOLS_PER_CALL`](crate::MAX_SYMBOLS_PER_CALL) of them; otherwise as
    /// [`get_ticker`](Self::get_ticker), for the whole call.
    ///
    /// # Examples
    ///
    /// See [`set_tickers`](Self::set_tickers).
    pub async fn get_tickers<S: AsRef<str>>(&self, symbols: &[S]) -> Result<Vec<Option<Ticker>>> {
        let _call = self.shared.call(Op::GetTickers);
        let keys = self.batch_keys(symbols, |s| self.shared.keys.ticker(s))?;
        self.read_many(Op::GetTickers, &keys).await
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
        self.set_funding_rate_with(symbol, rate, WriteOptions::new())
            .await
    }

    /// As [`set_funding_rate`](Self::set_funding_rate), with options: a TTL of its own.
    ///
    /// # Errors
    ///
    /// As [`set_funding_rate`](Self::set_funding_rate); a TTL under 1 ms or over
    /// [`MAX_TTL`](crate::MAX_TTL) is invalid input.
    ///
    /// # Examples
    ///
    /// See [`WriteOptions`].
    pub async fn set_funding_rate_with(
        &self,
        symbol: &str,
        rate: f64,
        options: WriteOptions,
    ) -> Result<()> {
        let _call = self.shared.call(Op::SetFundingRate);
        let key = self.shared.keys.funding(symbol)?;
        validate_funding_rate(rate)?;
        let ttl = options.ttl_for(&self.shared.config, DataType::FundingRate)?;
        let value = codec::encode(&rate);
        self.shared
            .write_value(Op::SetFundingRate, &key, value, Some(ttl))
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
        let _call = self.shared.call(Op::GetFundingRate);
        let key = self.shared.keys.funding(symbol)?;
        self.read_one(Op::GetFundingRate, &key).await
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
        self.set_funding_rates_with(rates, WriteOptions::new())
            .await
    }

    /// As [`set_funding_rates`](Self::set_funding_rates), with options: a TTL of its own.
    ///
    /// # Errors
    ///
    /// As [`set_funding_rates`](Self::set_funding_rates); a TTL under 1 ms or over
    /// [`MAX_TTL`](crate::MAX_TTL) is invalid input.
    ///
    /// # Examples
    ///
    /// See [`WriteOptions`].
    pub async fn set_funding_rates_with<S: AsRef<str>>(
        &self,
        rates: &[(S, f64)],
        options: WriteOptions,
    ) -> Result<()> {
        let _call = self.shared.call(Op::SetFundingRates);
        check_batch(rates.len())?;
        let ttl = options.ttl_for(&self.shared.config, DataType::FundingRate)?;
        let items = batch_entries("rates", rates, |(symbol, rate)| {
            let key = self.shared.keys.funding(symbol.as_ref())?;
            validate_funding_rate(*rate)?;
            Ok((key, codec::encode(rate)))
        })?;
        self.shared
            .write_values(Op::SetFundingRates, &items, ttl)
            .await
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
        let _call = self.shared.call(Op::GetFundingRates);
        let keys = self.batch_keys(symbols, |s| self.shared.keys.funding(s))?;
        self.read_many(Op::GetFundingRates, &keys).await
    }

    /// Caches the Fear & Greed reading with the default TTL (300 s).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput), and nothing is
    /// written, for a value over 100, a timestamp out of range, or a
    /// classification that contradicts the value (see [`FearGreed::validate`]);
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
        self.set_fear_greed_with(reading, WriteOptions::new()).await
    }

    /// As [`set_fear_greed`](Self::set_fear_greed), with options: a TTL of its own.
    ///
    /// # Errors
    ///
    /// As [`set_fear_greed`](Self::set_fear_greed); a TTL under 1 ms or over
    /// [`MAX_TTL`](crate::MAX_TTL) is invalid input.
    ///
    /// # Examples
    ///
    /// See [`WriteOptions`].
    pub async fn set_fear_greed_with(
        &self,
        reading: &FearGreed,
        options: WriteOptions,
    ) -> Result<()> {
        let _call = self.shared.call(Op::SetFearGreed);
        reading.validate()?;
        let ttl = options.ttl_for(&self.shared.config, DataType::FearGreed)?;
        let key = self.shared.keys.fear_greed();
        let value = codec::encode(reading);
        self.shared
            .write_value(Op::SetFearGreed, &key, value, Some(ttl))
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
        let _call = self.shared.call(Op::GetFearGreed);
        let key = self.shared.keys.fear_greed();
        self.read_one(Op::GetFearGreed, &key).await
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

    /// Reads one value through the shared read path, checked as writes check it.
    async fn read_one<T: DecodeValid>(&self, op: Op, key: &str) -> Result<Option<T>> {
        let fetched = self.shared.backend.get(key).await;
        self.shared
            .finish_read(op, key, fetched, |v| T::decode_valid(&v))
    }

    /// One MGET for every key, through the shared read path.
    async fn read_many<T: DecodeValid>(&self, op: Op, keys: &[String]) -> Result<Vec<Option<T>>> {
        let fetched = self.shared.backend.mget(keys).await;
        self.shared
            .finish_read_many(op, keys, fetched, |v| T::decode_valid(&v))
    }
}

/// The entries of a batch write, each checked by `entry` before anything is
/// sent; the first bad one fails the call, named by its index in `what`.
fn batch_entries<I>(
    what: &str,
    items: &[I],
    entry: impl Fn(&I) -> Result<(String, Bytes)>,
) -> Result<Vec<(String, Bytes)>> {
    let checked = items
        .iter()
        .enumerate()
        .map(|(i, item)| entry(item).map_err(|e| Error::invalid(format!("{what}[{i}]: {e}"))));
    checked.collect()
}
