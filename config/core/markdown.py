"""Markdown that people type (comments): a safe subset rendered by markdown-it-py, then sanitized by nh3.

The subset: paragraphs, links, emphasis, lists, block quotes, inline code and code blocks. Raw HTML is
escaped by the parser (`html: False`), images, headings, tables and rules are not parsed, and whatever the
parser emits still goes through nh3 with an allow-list of tags, attributes and URL schemes; every link gets
rel="nofollow ugc". `@username` becomes a link to that user's profile when the user exists (the caller
says which do: this layer knows no models).

Rendering happens when a comment is written; the templates print the stored HTML through the `sanitized`
filter (config.core.templatetags.forecastle), which runs nh3 again, so no template ever marks typed text safe.
"""

import re
from collections.abc import Callable, Mapping

import nh3
from markdown_it import MarkdownIt
from markdown_it.rules_core import StateCore
from markdown_it.token import Token

# A Django username (letters, digits and @ . + - _), not ending in a dot so "thanks @ana." links "ana".
MENTION = re.compile(r"(?<![\w@/.+-])@([\w.+-]*[\w+-])")

ALLOWED_TAGS = {"p", "br", "a", "em", "strong", "ul", "ol", "li", "blockquote", "code", "pre"}
ALLOWED_ATTRIBUTES = {"a": {"href", "class"}, "ol": {"start"}}
URL_SCHEMES = {"http", "https", "mailto"}
LINK_REL = "nofollow ugc"


def mentioned_usernames(text: str) -> set[str]:
    """Every @name in `text` (the caller checks which are users)."""
    return {match.group(1) for match in MENTION.finditer(text)}


def _mentions_rule(state: StateCore) -> None:
    """Turns @name in text tokens (not in links or code) into a link, for the names the caller knows."""
    known: Mapping[str, str] = state.env.get("mentions", {})
    if not known:
        return
    for block in state.tokens:
        if block.type != "inline" or not block.children:
            continue
        children: list[Token] = []
        link_depth = 0
        for token in block.children:
            if token.type == "link_open":
                link_depth += 1
            elif token.type == "link_close":
                link_depth -= 1
            if token.type != "text" or link_depth > 0 or "@" not in token.content:
                children.append(token)
                continue
            position = 0
            for match in MENTION.finditer(token.content):
                url = known.get(match.group(1))
                if url is None:
                    continue
                if match.start() > position:
                    children.append(_text(token.content[position : match.start()]))
                link = Token("link_open", "a", 1)
                link.attrs = {"href": url, "class": "mention"}
                children.extend([link, _text(match.group(0)), Token("link_close", "a", -1)])
                position = match.end()
            if position < len(token.content):
                children.append(_text(token.content[position:]))
        block.children = children


def _text(content: str) -> Token:
    token = Token("text", "", 0)
    token.content = content
    return token


def _parser() -> MarkdownIt:
    parser = MarkdownIt("commonmark", {"html": False, "breaks": True})
    parser.disable(["image", "heading", "lheading", "hr", "html_block", "html_inline", "reference"])
    parser.core.ruler.push("mentions", _mentions_rule)
    return parser


PARSER = _parser()


def sanitize_html(html: str) -> str:
    """Only the allowed tags, attributes and URL schemes survive; links get rel="nofollow ugc"."""
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel=LINK_REL,
    )


def markdown_render(text: str, *, mention_url: Callable[[str], str | None] | None = None) -> str:
    """`text` as sanitized HTML. `mention_url(name)` gives the profile address of each @name that is a user
    (None for one that is not): those become links."""
    mentions: dict[str, str] = {}
    if mention_url is not None:
        for name in mentioned_usernames(text):
            url = mention_url(name)
            if url is not None:
                mentions[name] = url
    return sanitize_html(PARSER.render(text, {"mentions": mentions}))
