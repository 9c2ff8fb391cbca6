//! The tray's words, from the window's own message catalogue
//! (`ui/src/i18n/*.json`, flat `key → text` with `{name}` placeholders), so
//! both speak the same language with the same strings.

use std::collections::HashMap;
use std::sync::OnceLock;

use veil_system::config::Language;

const EN: &str = include_str!("../../ui/src/i18n/en.json");
const ZH_CN: &str = include_str!("../../ui/src/i18n/zh-CN.json");

/// A shipped locale.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Locale {
    #[default]
    En,
    ZhCn,
}

impl Locale {
    /// The setting, with "system" read from the OS: Chinese when its
    /// language is `zh`, English otherwise (what the window does too).
    pub fn of(language: Language) -> Self {
        match language {
            Language::English => Locale::En,
            Language::SimplifiedChinese => Locale::ZhCn,
            Language::System => Self::of_os_tag(sys_locale::get_locale().as_deref()),
        }
    }

    fn of_os_tag(tag: Option<&str>) -> Self {
        match tag {
            Some(tag) if tag.to_ascii_lowercase().starts_with("zh") => Locale::ZhCn,
            _ => Locale::En,
        }
    }

    fn catalogue(self) -> &'static HashMap<String, String> {
        static EN_MAP: OnceLock<HashMap<String, String>> = OnceLock::new();
        static ZH_MAP: OnceLock<HashMap<String, String>> = OnceLock::new();
        let (cell, text) = match self {
            Locale::En => (&EN_MAP, EN),
            Locale::ZhCn => (&ZH_MAP, ZH_CN),
        };
        // The catalogues are checked by the UI's tests and by this module's;
        // a broken one leaves keys showing rather than a tray that panics.
        cell.get_or_init(|| serde_json::from_str(text).unwrap_or_default())
    }

    /// The text of `key` with `{name}` placeholders filled; English when
    /// this locale lacks it, the key itself when both do.
    pub fn text(self, key: &str, params: &[(&str, &str)]) -> String {
        let template = self
            .catalogue()
            .get(key)
            .or_else(|| Locale::En.catalogue().get(key))
            .map_or(key, String::as_str);
        let mut out = template.to_owned();
        for (name, value) in params {
            out = out.replace(&format!("{{{name}}}"), value);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `tray.*` key the Rust side uses, in both catalogues.
    const USED: &[&str] = &[
        "tray.system_proxy",
        "tray.upstream",
        "tray.direct_item",
        "tray.pool_item",
        "tray.masked",
        "tray.not_masked",
        "tray.ip_unknown",
        "tray.not_running",
        "tray.route_via",
        "tray.route_pool",
        "tray.route_direct",
        "tray.state_line",
        "tray.state_line_attached",
        "tray.alert",
        "tray.drift",
        "tray.drift_reapply",
        "tray.drift_leave",
        "tray.test_all",
        "tray.testing",
        "tray.test_now",
        "tray.test_ok",
        "tray.test_failed",
        "tray.clipboard_refused",
        "tray.close_all",
        "tray.copy_exports",
        "tray.open",
        "tray.quit",
        "tray.tooltip",
        "tray.tooltip_off",
        "tray.strategy_roundrobin",
        "tray.strategy_leastconn",
        "tray.strategy_first",
        "tray.strategy_fastest",
    ];

    #[test]
    fn every_tray_key_is_in_both_catalogues() {
        for locale in [Locale::En, Locale::ZhCn] {
            for key in USED {
                assert!(
                    locale.catalogue().contains_key(*key),
                    "{key} missing in {locale:?}"
                );
            }
        }
    }

    #[test]
    fn placeholders_are_filled_and_the_os_language_is_followed() {
        assert_eq!(
            Locale::En.text("tray.route_via", &[("name", "work")]),
            "via work"
        );
        assert_eq!(
            Locale::ZhCn.text("tray.route_via", &[("name", "work")]),
            "经由 work"
        );
        assert_eq!(Locale::of_os_tag(Some("zh-Hans-CN")), Locale::ZhCn);
        assert_eq!(Locale::of_os_tag(Some("zh_CN.UTF-8")), Locale::ZhCn);
        assert_eq!(Locale::of_os_tag(Some("en-GB")), Locale::En);
        assert_eq!(Locale::of_os_tag(None), Locale::En);
        assert_eq!(Locale::En.text("no.such.key", &[]), "no.such.key");
    }
}
