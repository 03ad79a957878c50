//! Screens and windows larger than a share sends are scaled down by the X server itself, with
//! the Render extension (a transformed, bilinear-filtered composite into a smaller pixmap), so
//! only the smaller picture crosses the socket and no resampler runs here.

use x11rb::connection::Connection;
use x11rb::protocol::render::{
    ConnectionExt as _, CreatePictureAux, PictOp, Pictvisual, Transform,
};
use x11rb::protocol::xproto::{ConnectionExt as _, GetImageReply, ImageFormat, Visualid};
use x11rb::rust_connection::RustConnection;

/// Where a picture is read from: a drawable of that visual, the `size` area at `at`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Area {
    pub(super) drawable: u32,
    pub(super) visual: Visualid,
    pub(super) depth: u8,
    pub(super) at: (i16, i16),
    pub(super) size: (u16, u16),
}

/// Reads `area` scaled to `to` (see [`super::fitted`]) through a Render composite; `formats` are the
/// server's ([`picture_formats`]).
pub(super) fn scaled_image(
    conn: &RustConnection,
    formats: &[Pictvisual],
    area: Area,
    to: (u16, u16),
) -> Result<GetImageReply, Box<dyn std::error::Error>> {
    let format = formats
        .iter()
        .find(|v| v.visual == area.visual)
        .map(|v| v.format)
        .ok_or_else(|| format!("no Render format for visual {:#x}", area.visual))?;
    let fixed = |v: f64| (v * 65536.0) as i32;
    let (sx, sy) = (
        f64::from(area.size.0) / f64::from(to.0),
        f64::from(area.size.1) / f64::from(to.1),
    );
    // The transform maps a destination pixel to its source point.
    let transform = Transform {
        matrix11: fixed(sx),
        matrix12: 0,
        matrix13: fixed(f64::from(area.at.0)),
        matrix21: 0,
        matrix22: fixed(sy),
        matrix23: fixed(f64::from(area.at.1)),
        matrix31: 0,
        matrix32: 0,
        matrix33: fixed(1.0),
    };
    let source = conn.generate_id()?;
    conn.render_create_picture(source, area.drawable, format, &CreatePictureAux::new())?;
    conn.render_set_picture_transform(source, transform)?;
    conn.render_set_picture_filter(source, b"bilinear", &[])?;
    let pixmap = conn.generate_id()?;
    conn.create_pixmap(area.depth, pixmap, area.drawable, to.0, to.1)?;
    let target = conn.generate_id()?;
    conn.render_create_picture(target, pixmap, format, &CreatePictureAux::new())?;
    conn.render_composite(
        PictOp::SRC,
        source,
        0u32,
        target,
        0,
        0,
        0,
        0,
        0,
        0,
        to.0,
        to.1,
    )?;
    let image = conn.get_image(ImageFormat::Z_PIXMAP, pixmap, 0, 0, to.0, to.1, !0);
    // Freed whatever the read gave: the requests are queued before the reply is awaited.
    let _ = conn.render_free_picture(source);
    let _ = conn.render_free_picture(target);
    let _ = conn.free_pixmap(pixmap);
    let image = image?.reply()?;
    conn.flush()?;
    Ok(image)
}

/// The server's Render picture format of each visual (asked once per connection: it never
/// changes).
pub(super) fn picture_formats(
    conn: &RustConnection,
) -> Result<Vec<Pictvisual>, Box<dyn std::error::Error>> {
    let formats = conn.render_query_pict_formats()?.reply()?;
    Ok(formats
        .screens
        .iter()
        .flat_map(|s| &s.depths)
        .flat_map(|d| d.visuals.iter().copied())
        .collect())
}
