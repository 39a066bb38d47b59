-- Demo catalogue: :count paints (psql -v count=10000), deterministic (same
-- seed, same rows), across real-sounding brands, colour families and types.
-- Loaded by scripts/stack.sh only into an empty paints table.
\set ON_ERROR_STOP on
SELECT setseed(0.4242);

WITH pigments(pname, family, hex) AS (VALUES
    ('Cadmium Red', 'Red', '#e30022'), ('Alizarin Crimson', 'Red', '#a51b2b'),
    ('Pyrrole Red', 'Red', '#d3212d'), ('Quinacridone Rose', 'Red', '#d1306f'),
    ('Naphthol Crimson', 'Red', '#b8202f'), ('Permanent Carmine', 'Red', '#960018'),
    ('Cadmium Orange', 'Orange', '#ed872d'), ('Pyrrole Orange', 'Orange', '#f26522'),
    ('Perinone Orange', 'Orange', '#f0632a'), ('Transparent Orange', 'Orange', '#e0611f'),
    ('Cadmium Yellow', 'Yellow', '#fff600'), ('Hansa Yellow', 'Yellow', '#f9d71c'),
    ('Lemon Yellow', 'Yellow', '#fff44f'), ('Yellow Ochre', 'Yellow', '#cb9d06'),
    ('Naples Yellow', 'Yellow', '#fada5e'), ('Indian Yellow', 'Yellow', '#e3a857'),
    ('Phthalo Green', 'Green', '#123524'), ('Viridian', 'Green', '#40826d'),
    ('Sap Green', 'Green', '#507d2a'), ('Chromium Oxide Green', 'Green', '#6b8e23'),
    ('Hooker''s Green', 'Green', '#49796b'), ('Terre Verte', 'Green', '#6e8b5b'),
    ('Ultramarine Blue', 'Blue', '#120a8f'), ('Cobalt Blue', 'Blue', '#0047ab'),
    ('Cerulean Blue', 'Blue', '#2a52be'), ('Phthalo Blue', 'Blue', '#000f89'),
    ('Prussian Blue', 'Blue', '#003153'), ('Indanthrone Blue', 'Blue', '#26336b'),
    ('Dioxazine Violet', 'Violet', '#4b0082'), ('Cobalt Violet', 'Violet', '#8b00ff'),
    ('Quinacridone Magenta', 'Violet', '#8e3a59'), ('Manganese Violet', 'Violet', '#7f3e98'),
    ('Burnt Sienna', 'Brown', '#8a3324'), ('Raw Umber', 'Brown', '#826644'),
    ('Burnt Umber', 'Brown', '#6e260e'), ('Van Dyke Brown', 'Brown', '#664228'),
    ('Raw Sienna', 'Brown', '#d68a59'), ('Ivory Black', 'Black', '#231f20'),
    ('Mars Black', 'Black', '#1b1b1b'), ('Lamp Black', 'Black', '#2b2b2b'),
    ('Titanium White', 'White', '#f4f4f4'), ('Zinc White', 'White', '#fcfcf7'),
    ('Payne''s Grey', 'Grey', '#536878'), ('Davy''s Grey', 'Grey', '#555555'),
    ('Neutral Grey', 'Grey', '#8c8c8c'), ('Iridescent Gold', 'Metallic', '#d4af37'),
    ('Iridescent Silver', 'Metallic', '#c0c0c0'), ('Copper', 'Metallic', '#b87333'),
    ('Interference Blue', 'Metallic', '#7ba7d9'), ('Fluorescent Pink', 'Fluorescent', '#ff1493')
),
brands(bname, prefix, types) AS (VALUES
    ('Winsor & Newton', 'WN', ARRAY['Watercolor', 'Oil', 'Acrylic', 'Gouache']),
    ('Golden', 'GA', ARRAY['Acrylic', 'Watercolor']),
    ('Liquitex', 'LQ', ARRAY['Acrylic', 'Ink', 'Spray']),
    ('Daler-Rowney', 'DR', ARRAY['Acrylic', 'Oil', 'Ink']),
    ('Schmincke', 'SM', ARRAY['Watercolor', 'Oil', 'Gouache']),
    ('Sennelier', 'SN', ARRAY['Oil', 'Watercolor', 'Ink']),
    ('Royal Talens Rembrandt', 'RT', ARRAY['Oil', 'Watercolor']),
    ('Holbein', 'HB', ARRAY['Watercolor', 'Gouache', 'Oil']),
    ('Daniel Smith', 'DS', ARRAY['Watercolor']),
    ('M. Graham', 'MG', ARRAY['Watercolor', 'Oil', 'Gouache']),
    ('Gamblin', 'GB', ARRAY['Oil']),
    ('Old Holland', 'OH', ARRAY['Oil', 'Watercolor']),
    ('Michael Harding', 'MH', ARRAY['Oil']),
    ('Amsterdam', 'AM', ARRAY['Acrylic', 'Spray']),
    ('Vallejo', 'VJ', ARRAY['Acrylic', 'Enamel']),
    ('Citadel', 'CT', ARRAY['Acrylic']),
    ('Tamiya', 'TM', ARRAY['Enamel', 'Acrylic', 'Spray']),
    ('Pebeo', 'PB', ARRAY['Acrylic', 'Ink', 'Enamel']),
    ('Montana', 'MT', ARRAY['Spray']),
    ('Caran d''Ache', 'CA', ARRAY['Gouache', 'Watercolor'])
),
p AS (SELECT (row_number() OVER ()) - 1 AS i, * FROM pigments),
b AS (SELECT (row_number() OVER ()) - 1 AS i, * FROM brands),
g AS (
    SELECT n,
           floor(random() * 50)::int AS pi,
           floor(random() * 20)::int AS bi,
           random() AS r1, random() AS r2, random() AS r3, random() AS r4,
           random() AS r5, random() AS r6
    FROM generate_series(1, :count) AS n
),
rows AS (
    SELECT g.*, p.pname, p.family, p.hex, b.bname, b.prefix,
           b.types[1 + floor(g.r1 * array_length(b.types, 1))::int] AS ctype
    FROM g JOIN p ON p.i = g.pi JOIN b ON b.i = g.bi
)
INSERT INTO paints (name, brand, color_code, color_type, color_family, stock,
                    price, description, color_preview, created_at, updated_at)
SELECT
    pname || CASE WHEN r3 < 0.12 THEN ' Hue' WHEN r3 < 0.22 THEN ' Light'
                  WHEN r3 < 0.32 THEN ' Deep' WHEN r3 < 0.38 THEN ' Pale' ELSE '' END,
    bname,
    prefix || '-' || lpad((100 + floor(r2 * 900))::int::text, 3, '0') || '-' || n,
    ctype,
    family,
    CASE WHEN r4 < 0.1 THEN 0 ELSE floor(r5 * 240)::int + 1 END,
    round((CASE ctype WHEN 'Oil' THEN 10 + r6 * 50 WHEN 'Watercolor' THEN 8 + r6 * 18
                      WHEN 'Gouache' THEN 7 + r6 * 13 WHEN 'Enamel' THEN 3 + r6 * 5
                      WHEN 'Spray' THEN 6 + r6 * 9 WHEN 'Ink' THEN 5 + r6 * 9
                      ELSE 6 + r6 * 24 END)::numeric, 2),
    ctype || ' paint by ' || bname || ', ' || lower(family) || ' family, ' ||
        CASE WHEN r2 < 0.5 THEN 'artist quality' ELSE 'studio quality' END || '.',
    '#' || (SELECT string_agg(lpad(to_hex(greatest(0, least(255,
                 ('x' || substr(hex, k, 2))::bit(8)::int + ((r3 - 0.5) * 50)::int))), 2, '0'), '' ORDER BY k)
            FROM unnest(ARRAY[2, 4, 6]) AS k),
    now() - make_interval(secs => (:count - n) * 3600 + floor(r1 * 3000)),
    now() - make_interval(secs => (:count - n) * 3600 + floor(r1 * 3000))
FROM rows
ORDER BY n;
