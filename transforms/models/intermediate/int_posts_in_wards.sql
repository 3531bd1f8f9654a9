-- Every post with its signals, issue type and location, placed in the ward whose boundaries
-- were in force on the post's date. Points on a shared edge go to the lowest ward id, so the
-- result is deterministic; located points outside every ward are kept and flagged.
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

located as (

    select
        locations.*,
        cast(posts.created_at as date) as post_date
    from locations
    inner join posts using (post_id)
    where locations.lat is not null

),

within_ward as (

    -- ST_Within on the R-tree-backed spatial join; interior points match exactly one ward.
    select located.post_id, wards.ward_id, wards.boundary_version
    from located
    inner join wards
        on st_within(located.geom, wards.geom)
        and (wards.valid_from is null or located.post_date >= wards.valid_from)
        and (wards.valid_to is null or located.post_date < wards.valid_to)

),

on_edge as (

    -- Points on a boundary line are within no ward: give them the lowest touching ward id.
    select post_id, ward_id, boundary_version
    from (
        select
            located.post_id,
            wards.ward_id,
            wards.boundary_version,
            row_number() over (partition by located.post_id order by wards.ward_id) as rank_in_post
        from located
        inner join wards
            on st_intersects(located.geom, wards.geom)
            and (wards.valid_from is null or located.post_date >= wards.valid_from)
            and (wards.valid_to is null or located.post_date < wards.valid_to)
        where located.post_id not in (select post_id from within_ward)
    ) as ranked
    where rank_in_post = 1

),

ward_of_post as (

    select * from within_ward
    union all
    select * from on_edge

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
        coalesce(locations.location_confidence, 0.0) as location_confidence,
        ward_of_post.ward_id,
        ward_of_post.boundary_version,
        locations.lat is not null and ward_of_post.ward_id is null as is_outside_wards
    from posts
    left join signals using (post_id)
    left join types using (post_id)
    left join locations using (post_id)
    left join ward_of_post using (post_id)

)

select * from final
