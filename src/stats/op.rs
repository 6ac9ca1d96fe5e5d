//! The operations metrics are kept for: every public call, and the round
//! trips a lock of `get_or_compute` makes on its own.

macro_rules! ops {
    ($($(#[$doc:meta])* $variant:ident => $name:literal,)*) => {
        /// A call of this crate, as metrics and events name it.
        ///
        /// The `*_with` variants of a call count as the call
        /// (`set_bars_with` is [`Op::SetBars`]).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum Op {
            $($(#[$doc])* $variant,)*
        }

        impl Op {
            /// Every operation, in declaration order.
            pub const ALL: &'static [Op] = &[$(Op::$variant,)*];

            /// The name of the call, as in events (`redis_{op}_error`) and
            /// in the `op` label of exported metrics.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Op::$variant => $name,)*
                }
            }
        }
    };
}

ops! {
    /// [`OhlcvCache::set_bars`](crate::OhlcvCache::set_bars).
    SetBars => "set_bars",
    /// [`OhlcvCache::get_bars`](crate::OhlcvCache::get_bars).
    GetBars => "get_bars",
    /// [`OhlcvCache::get_bars_archived`](crate::OhlcvCache::get_bars_archived).
    GetBarsArchived => "get_bars_archived",
    /// [`OhlcvCache::get_range`](crate::OhlcvCache::get_range).
    GetRange => "get_range",
    /// [`OhlcvCache::get_latest_bar`](crate::OhlcvCache::get_latest_bar).
    GetLatestBar => "get_latest_bar",
    /// [`OhlcvCache::get_latest_bars`](crate::OhlcvCache::get_latest_bars).
    GetLatestBars => "get_latest_bars",
    /// [`OhlcvCache::invalidate`](crate::OhlcvCache::invalidate).
    Invalidate => "invalidate",
    /// [`MarketDataCache::set_ticker`](crate::MarketDataCache::set_ticker).
    SetTicker => "set_ticker",
    /// [`MarketDataCache::get_ticker`](crate::MarketDataCache::get_ticker).
    GetTicker => "get_ticker",
    /// [`MarketDataCache::set_tickers`](crate::MarketDataCache::set_tickers).
    SetTickers => "set_tickers",
    /// [`MarketDataCache::get_tickers`](crate::MarketDataCache::get_tickers).
    GetTickers => "get_tickers",
    /// [`MarketDataCache::set_funding_rate`](crate::MarketDataCache::set_funding_rate).
    SetFundingRate => "set_funding_rate",
    /// [`MarketDataCache::get_funding_rate`](crate::MarketDataCache::get_funding_rate).
    GetFundingRate => "get_funding_rate",
    /// [`MarketDataCache::set_funding_rates`](crate::MarketDataCache::set_funding_rates).
    SetFundingRates => "set_funding_rates",
    /// [`MarketDataCache::get_funding_rates`](crate::MarketDataCache::get_funding_rates).
    GetFundingRates => "get_funding_rates",
    /// [`MarketDataCache::set_fear_greed`](crate::MarketDataCache::set_fear_greed).
    SetFearGreed => "set_fear_greed",
    /// [`MarketDataCache::get_fear_greed`](crate::MarketDataCache::get_fear_greed).
    GetFearGreed => "get_fear_greed",
    /// [`LlmCache::set_analysis`](crate::LlmCache::set_analysis).
    SetAnalysis => "set_analysis",
    /// [`LlmCache::get_analysis`](crate::LlmCache::get_analysis).
    GetAnalysis => "get_analysis",
    /// [`LlmCache::get_or_compute`](crate::LlmCache::get_or_compute): the
    /// whole call, a wait for another caller's computation and the
    /// closure's own time included.
    GetOrCompute => "get_or_compute",
    /// One attempt of `get_or_compute` to take its cross-process lock (`SET NX`).
    LlmLock => "llm_lock",
    /// One renewal of a held lock's lease.
    LlmLockRenew => "llm_lock_renew",
    /// One release of a held lock.
    LlmUnlock => "llm_unlock",
    /// [`RedisClient::get`](crate::RedisClient::get).
    Get => "get",
    /// [`RedisClient::get_bytes`](crate::RedisClient::get_bytes).
    GetBytes => "get_bytes",
    /// [`RedisClient::get_json`](crate::RedisClient::get_json).
    GetJson => "get_json",
    /// [`RedisClient::set`](crate::RedisClient::set).
    Set => "set",
    /// [`RedisClient::set_bytes`](crate::RedisClient::set_bytes).
    SetBytes => "set_bytes",
    /// [`RedisClient::set_json`](crate::RedisClient::set_json).
    SetJson => "set_json",
    /// [`RedisClient::mget`](crate::RedisClient::mget).
    Mget => "mget",
    /// [`RedisClient::delete`](crate::RedisClient::delete).
    Delete => "delete",
    /// [`RedisClient::exists`](crate::RedisClient::exists).
    Exists => "exists",
    /// [`CacheManager::health_check`](crate::CacheManager::health_check).
    Ping => "ping",
    /// [`CacheManager::clear_all`](crate::CacheManager::clear_all).
    ClearAll => "clear_all",
    /// [`CacheManager::flush_db`](crate::CacheManager::flush_db).
    FlushDb => "flush_db",
    /// [`CacheManager::memory_report`](crate::CacheManager::memory_report).
    MemoryReport => "memory_report",
    /// [`CacheManager::inspect`](crate::CacheManager::inspect).
    Inspect => "inspect",
}

impl Op {
    /// How many operations there are: the length of per-operation tables.
    pub(crate) const COUNT: usize = Op::ALL.len();

    /// This operation's row in per-operation tables.
    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_op_has_its_own_row_and_name() {
        let mut names = std::collections::HashSet::new();
        for (i, op) in Op::ALL.iter().enumerate() {
            assert_eq!(op.index(), i, "{op}");
            assert!(names.insert(op.as_str()), "{op} named twice");
        }
        assert_eq!(Op::COUNT, names.len());
    }
}
