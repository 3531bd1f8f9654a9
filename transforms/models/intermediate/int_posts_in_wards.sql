-- Every post with its signals, issue type and location, placed in the ward whose boundaries
-- were in force on the post's date. Points on a shared edge go to the lowest ward id, so the
-- result is deterministic; located points outside every ward are kept and flagged; a
-- geocoder's default point (int_default_points) gets low confidence and no ward.
--
-- Incremental: a row is a function of its post's own inputs (the post, its signals, type and
-- location, whether its point is a default point) and of the ward boundaries. Each row keeps a
-- hash of its inputs (inputs_hash) and of the boundaries (wards_fingerprint); a run recomputes
-- (delete+insert on post_id) only the posts that are new or whose inputs hash changed (a type
-- that arrived later, a point that became a default point), and every post when the boundaries
-- changed. The hashes are computed without the spatial join, which runs on those posts only.
-- Posts gone from staging are deleted (post_hook). `dbt build --full-refresh` rebuilds it all;
-- tests/test_incremental_dbt.py checks both give the same table. A table built before it was
-- incremental is rebuilt in full once, gaining the two hash columns (sync_all_columns).
{{
    config(
        materialized='incremental',
        unique_key='post_id',
        incremental_strategy='delete+insert',
        on_schema_change='sync_all_columns',
        post_hook="delete from {{ this }} where post_id not in (select post_id from {{ ref('stg_social__posts') }})"
    )
}}
{#- A table built before this model was incremental lacks the hash columns: build it in full once. -#}
{%- set can_increment = false -%}
{%- if is_incremental() -%}
    {%- set built_columns = adapter.get_columns_in_relation(this) | map(attribute='name') | map('lower') | list -%}
    {%- set can_increment = 'inputs_hash' in built_columns and 'wards_fingerprint' in built_columns -%}
{%- endif %}

with

posts as (

    select * from {{ ref('stg_social__posts') }}

),

signals as (

    select post_id, relevance, is_report, sentiment from {{ source('ml', 'post_signals') }}

),

types as (

    select post_id, type_id, service_code, similarity as type_similarity
    from {{ source('ml', 'post_types') }}

),

locations as (

    select
        post_id,
        lat,
        lon,
        method as location_method,
        confidence as location_confidence,
        st_point(lon, lat) as geom
    from {{ source('ml', 'post_locations') }}

),

wards as (

    select ward_id, boundary_version, valid_from, valid_to, geom
    from {{ source('gis', 'wards') }}

),

wards_fingerprint as (

    -- Any change of a ward's id, version, dates or shape changes it (order-independent).
    select coalesce(bit_xor(hash(ward_id, boundary_version, valid_from, valid_to, st_aswkb(geom))), 0)
        as wards_fingerprint
    from wards

),

default_points as (

    -- A geocoder's fallback, decided from evidence in int_default_points (busy real addresses
    -- keep their ward). Text matches are exempt: residents naming one corner share its point.
    select lat, lon from {{ ref('int_default_points') }} where is_default

),

inputs as (

    select
        posts.post_id,
        hash(
            posts.post_id, posts.source_name, posts.post_text, posts.created_at, posts.ingested_at,
            posts.is_repost, posts.repost_of_post_id, posts.is_mentioning_city,
            signals.relevance, signals.is_report, signals.sentiment,
            types.type_id, types.service_code, types.type_similarity,
            locations.lat, locations.lon, locations.location_method, locations.location_confidence,
            default_points.lat is not null and locations.location_method in ('geotag', 'place_bbox')
        ) as inputs_hash
    from posts
    left join signals using (post_id)
    left join types using (post_id)
    left join locations using (post_id)
    left join default_points
        on locations.lat = default_points.lat and locations.lon = default_points.lon

),

todo as (

    -- The posts this run (re)computes: all of them on a full build.
    select inputs.post_id, inputs.inputs_hash
    from inputs
    {% if can_increment %}
    left join {{ this }} as built
        on built.post_id = inputs.post_id and built.inputs_hash = inputs.inputs_hash
    where built.post_id is null
        or (select max(wards_fingerprint) from {{ this }})
        is distinct from (select wards_fingerprint from wards_fingerprint)
    {% endif %}

),

located as (

    select
        locations.*,
        posts.is_repost,
        cast(posts.created_at as date) as post_date
    from locations
    inner join posts using (post_id)
    inner join todo using (post_id)
    where locations.lat is not null

),

flagged as (

    select
        located.*,
        default_points.lat is not null
        and located.location_method in ('geotag', 'place_bbox') as is_default_point
    from located
    left join default_points
        on located.lat = default_points.lat and located.lon = default_points.lon

),

candidates as (

    select post_id, geom, post_date
    from flagged
    where not is_default_point

),

ward_of_post as (

    -- One spatial join (DuckDB's SPATIAL_JOIN: an R-tree over the ward polygons) on
    -- ST_Intersects alone; the boundary dates are applied after it, through the ranking,
    -- because a date condition inside the join makes DuckDB fall back to a nested-loop join
    -- (15x slower on a million posts). A point inside a ward matches it; a point on a shared
    -- edge touches several: the lowest ward id wins, so the result is deterministic.
    select post_id, ward_id, boundary_version
    from (
        select
            post_id,
            ward_id,
            boundary_version,
            is_in_force,
            row_number() over (
                partition by post_id order by is_in_force desc, ward_id
            ) as rank_in_post
        from (
            select
                candidates.post_id,
                wards.ward_id,
                wards.boundary_version,
                (wards.valid_from is null or candidates.post_date >= wards.valid_from)
                and (wards.valid_to is null or candidates.post_date < wards.valid_to) as is_in_force
            from candidates
            inner join wards
                on st_intersects(candidates.geom, wards.geom)
        ) as touching
    ) as ranked
    where rank_in_post = 1 and is_in_force

),

final as (

    select
        posts.post_id,
        posts.source_name,
        posts.post_text,
        posts.created_at,
        posts.ingested_at,
        posts.is_repost,
        posts.repost_of_post_id,
        posts.is_mentioning_city,
        signals.relevance,
        coalesce(signals.is_report, false) as is_report,
        signals.sentiment,
        types.type_id,
        types.service_code,
        types.type_similarity,
        locations.lat,
        locations.lon,
        coalesce(locations.location_method, 'none') as location_method,
        case
            when flagged.is_default_point then least(locations.location_confidence, 0.1)
            else coalesce(locations.location_confidence, 0.0)
        end as location_confidence,
        coalesce(flagged.is_default_point, false) as is_default_point,
        ward_of_post.ward_id,
        ward_of_post.boundary_version,
        locations.lat is not null
        and not coalesce(flagged.is_default_point, false)
        and ward_of_post.ward_id is null as is_outside_wards,
        todo.inputs_hash,
        (select wards_fingerprint from wards_fingerprint) as wards_fingerprint
    from posts
    inner join todo using (post_id)
    left join signals using (post_id)
    left join types using (post_id)
    left join locations using (post_id)
    left join ward_of_post using (post_id)
    left join flagged using (post_id)

)

select * from final
