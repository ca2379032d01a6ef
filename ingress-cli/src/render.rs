//! Human output: diagnostics with the offending line and a caret, as rustc shows them.

use std::collections::BTreeMap;
use std::io::IsTerminal;

use annotate_snippets::{AnnotationKind, Group, Level, Renderer, Snippet};
use ingress_core::Severity;
use ingress_core::manifest::Located;

pub(crate) fn renderer() -> Renderer {
    if std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none() {
        Renderer::styled()
    } else {
        Renderer::plain()
    }
}

/// One diagnostic as text (several lines, no trailing newline).
pub(crate) fn diagnostic(
    d: &Located,
    texts: &BTreeMap<String, String>,
    renderer: &Renderer,
) -> String {
    let diag = &d.diagnostic;
    let level = match diag.severity {
        Severity::Error => Level::ERROR,
        Severity::Warning => Level::WARNING,
        Severity::Info => Level::NOTE,
    };
    let mut context = String::new();
    if let Some(o) = &diag.object {
        context.push_str(&o.to_string());
    }
    if let Some(f) = &diag.field {
        if !context.is_empty() {
            context.push_str(", ");
        }
        context.push_str(f);
    }
    let mut title = Group::with_title(
        level
            .primary_title(diag.message.as_str())
            .id(diag.code.as_str()),
    );
    let line_text;
    match &d.location {
        Some(loc) if texts.contains_key(&*loc.file) => {
            let text = &texts[&*loc.file];
            line_text = text
                .lines()
                .nth(loc.line.saturating_sub(1) as usize)
                .unwrap_or("")
                .to_owned();
            let start = line_text
                .char_indices()
                .nth(loc.column.saturating_sub(1) as usize)
                .map_or(line_text.len(), |(i, _)| i);
            let rest = &line_text[start..];
            let len = rest.trim_end().len().max(usize::from(!rest.is_empty()));
            let mut snippet = Snippet::source(line_text.as_str())
                .line_start(loc.line as usize)
                .path(&*loc.file);
            snippet = snippet.annotation(AnnotationKind::Primary.span(start..start + len));
            title = title.element(snippet);
        }
        Some(loc) => {
            title = title.element(
                Level::NOTE.message(format!("at {}:{}:{}", loc.file, loc.line, loc.column)),
            );
        }
        None => {}
    }
    if !context.is_empty() {
        title = title.element(Level::NOTE.message(context));
    }
    let report: Vec<Group<'_>> = vec![title];
    renderer.render(&report).to_string()
}

/// `file:line: ` prefix, or empty.
pub(crate) fn short_location(d: &Located) -> String {
    match &d.location {
        Some(l) => format!("{}:{}: ", l.file, l.line),
        None => String::new(),
    }
}
