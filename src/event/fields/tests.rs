use super::*;

#[test]
fn mismatched_end_tags_still_yield_every_field() {
    let text = "<xml>\n\t<ret>2</ret>\n\t<first>First class id</nickname>\n\t<second>Secondary category id</reason>\n      <reason>Reasons for dismissal</reason>\n</xml>";
    let f = Fields::parse(text, Format::Xml);
    assert_eq!(f.get("ret"), Some("2"));
    assert_eq!(f.get("first"), Some("First class id"));
    assert_eq!(f.get("second"), Some("Secondary category id"));
    assert_eq!(f.get("reason"), Some("Reasons for dismissal"));
}

#[test]
fn cdata_with_surrounding_layout_whitespace_is_read_exactly() {
    let f = Fields::parse(
        "<xml>\r\n <A>\r\n  <![CDATA[ x ]]>\r\n </A></xml>",
        Format::Xml,
    );
    assert_eq!(f.get("A"), Some(" x "));
}

#[test]
fn entities_and_character_references_are_resolved() {
    let f = Fields::parse(
        "<xml><r>a &lt;b&gt; &amp; c &#20013;&#x6587; &bogus;</r></xml>",
        Format::Xml,
    );
    assert_eq!(f.get("r"), Some("a <b> & c 中文 &bogus;"));
}

#[test]
fn lookup_ignores_case_after_an_exact_miss() {
    let f = Fields::parse(
        "<xml><Reason>x</Reason><reason2>y</reason2></xml>",
        Format::Xml,
    );
    assert_eq!(f.get("reason"), Some("x"));
}

#[test]
fn bom_and_declaration_are_skipped() {
    let f = Fields::parse(
        "\u{feff}<?xml version=\"1.0\"?><xml><A>1</A></xml>",
        Format::Xml,
    );
    assert_eq!(f.get("A"), Some("1"));
    assert_eq!(Format::detect("\u{feff}  {\"a\":1}"), Format::Json);
}

#[test]
fn json_values_become_text() {
    let f = Fields::parse(r#"{"a":1,"b":"x\/y","c":null,"d":[1]}"#, Format::Json);
    assert_eq!(f.get("a"), Some("1"));
    assert_eq!(f.get("b"), Some("x/y"));
    assert_eq!(f.get("c"), Some(""));
    assert_eq!(f.get("d"), Some("[1]"));
}

/// The fast path answers exactly as the lenient reader, or leaves the text to it.
#[test]
fn the_fast_path_agrees_with_the_lenient_reader() {
    let vectors: serde_json::Value =
        serde_json::from_str(include_str!("../../../tests/fixtures/vectors.json"))
            .expect("the vectors are valid JSON");
    let mut texts: Vec<String> = vectors["vectors"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|v| {
            [
                v["plaintext"].as_str().map(str::to_owned),
                v["request"]["body"].as_str().map(str::to_owned),
            ]
        })
        .flatten()
        .collect();
    assert!(texts.len() > 40, "the vectors were read: {}", texts.len());
    texts.extend(
        [
            "<xml><A><![CDATA[ x ]]></A><B> y </B><C></C></xml>",
            "<xml>\r\n <A>\r\n  <![CDATA[ x ]]>\r\n </A>\r\n</xml>\n",
            "<xml><A>1</A><A>2</A></xml>",
            "<xml><A>x<![CDATA[y]]></A></xml>",
            "<xml><A><![CDATA[y]]>z</A></xml>",
            "<xml><A><![CDATA[a]]><![CDATA[b]]></A></xml>",
            "<xml><A>a &amp; b</A></xml>",
            "<xml><A>1</B></xml>",
            "<xml><A><B>1</B></A></xml>",
            "<xml a=\"1\"><A>1</A></xml>",
            "<xml><A>1</A></xml>trailing",
            "<xml><A>1</A>",
            "<xml><A/></xml>",
            "<xml>stray<A>1</A></xml>",
            "<xml><A>x > y</A><中文>值</中文></xml>",
            "<xml></xml>",
            "<x></y>",
            "",
        ]
        .map(str::to_owned),
    );
    let mut fast = 0;
    for text in &texts {
        if let Some(quick) = scan_flat(text) {
            fast += 1;
            assert_eq!(quick, read_xml_leniently(text), "{text:?}");
        }
    }
    assert!(
        fast > texts.len() / 2,
        "the fast path took only {fast} of {}",
        texts.len()
    );
}

proptest::proptest! {
    /// Documents made of XML-ish pieces in any order: wherever the fast path answers,
    /// the lenient reader gives the same fields.
    #[test]
    fn the_fast_path_agrees_on_generated_documents(
        pieces in proptest::collection::vec(proptest::sample::select(vec![
            "<xml>", "</xml>", "<A>", "</A>", "<B>", "</B>", "<![CDATA[", "]]>", " ", "\n",
            "x", " y ", "&amp;", "<", ">", "中", "/", "<A/>", "=\"1\"",
        ]), 0..24)
    ) {
        let text: String = pieces.concat();
        if let Some(quick) = scan_flat(&text) {
            proptest::prop_assert_eq!(quick, read_xml_leniently(&text), "{:?}", text);
        }
    }

    /// Flat documents with varied names, values, CDATA, layout and the odd mismatched
    /// end tag: the fast path takes most and agrees on all it takes.
    #[test]
    fn the_fast_path_agrees_on_flat_documents(
        elements in proptest::collection::vec((
            proptest::sample::select(vec!["A", "B", "中", "Msg_Id"]),
            proptest::sample::select(vec!["", "x", " y ", "a&amp;b", "1 > 0", "\r\n z"]),
            proptest::bool::ANY,
            proptest::sample::select(vec!["", " ", "\n\t", "\r\n"]),
            proptest::sample::select(vec![None, None, None, Some("C")]),
        ), 0..8)
    ) {
        let mut text = String::from("<xml>");
        for (name, value, cdata, ws, wrong_end) in &elements {
            let value = if *cdata { format!("{ws}<![CDATA[{value}]]>{ws}") } else { format!("{ws}{value}{ws}") };
            text.push_str(&format!("{ws}<{name}>{value}</{}>", wrong_end.unwrap_or(name)));
        }
        text.push_str("</xml>");
        if let Some(quick) = scan_flat(&text) {
            proptest::prop_assert_eq!(quick, read_xml_leniently(&text), "{:?}", text);
        }
    }
}

#[test]
fn characters_strict_xml_forbids_unescaped_are_kept() {
    for value in [
        "x & y",
        "a < b",
        "score <60 & rank>3",
        "<3",
        "AT&T",
        "& ;",
        "1 <= 2 && 3",
    ] {
        let text = format!("<xml><reason>{value}</reason><B>end</B></xml>");
        let f = Fields::parse(&text, Format::Xml);
        assert_eq!(f.get("reason"), Some(value), "{text:?}");
        assert_eq!(f.get("B"), Some("end"), "{text:?}");
    }
    let cdata = "<xml><A><![CDATA[a < b & c]]></A><B>x & y</B></xml>";
    let f = Fields::parse(cdata, Format::Xml);
    assert_eq!((f.get("A"), f.get("B")), (Some("a < b & c"), Some("x & y")));
}

proptest::proptest! {
    /// A value made of text, stray `&` and `<` keeps every character, and the fields
    /// after it are still read.
    #[test]
    fn stray_ampersands_and_angles_lose_no_text(
        pieces in proptest::collection::vec(proptest::sample::select(vec![
            "a", " ", "&", "<", "<3", "& b", "#", ";", "1 < 2", "x&y", "中", ">", "=", "-",
        ]), 1..12)
    ) {
        let value: String = pieces.concat();
        let value = value.trim();
        let b = value.as_bytes();
        // `<` before a letter is a tag, and `&name;` a reference, in any XML reader.
        let tag_like = b.windows(2).any(|w| {
            w[0] == b'<' && (w[1].is_ascii_alphabetic() || b"_:/!?".contains(&w[1]) || w[1] >= 0x80)
        });
        let reference = value.match_indices('&').any(|(i, _)| starts_reference(&value[i + 1..]));
        proptest::prop_assume!(!tag_like && !reference && !value.is_empty());
        let text = format!("<xml><A>{value}</A><B>end</B></xml>");
        let f = Fields::parse(&text, Format::Xml);
        proptest::prop_assert_eq!(f.get("A"), Some(value), "{:?}", text);
        proptest::prop_assert_eq!(f.get("B"), Some("end"));
    }
}

#[test]
fn garbage_yields_no_fields_and_no_panic() {
    assert!(Fields::parse("<<<>>>&&&", Format::Xml).is_empty());
    assert!(Fields::parse("{not json", Format::Json).is_empty());
}
