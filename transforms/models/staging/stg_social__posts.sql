-- One row per post, cleaned: reposts point at their original, whitespace normalised.
with

source as (

    select * from {{ source('raw', 'posts') }}

),

renamed as (

    select
        post_id,
        source as source_name,
        native_id,
        trim(regexp_replace(text, '\s+', ' ', 'g')) as post_text,
        created_at,
        author_hash,
        lat,
        lon,
        place_name,
        place_min_lon,
        place_min_lat,
        place_max_lon,
        place_max_lat,
        repost_of as repost_of_post_id,
        reply_to as reply_to_post_id,
        coalesce(mentions_city, false) as is_mentioning_city,
        lang,
        ingested_at,
        ingest_run_id
    from source

),

final as (

    select
        *,
        repost_of_post_id is not null as is_repost,
        lat is not null and lon is not null as is_geotagged
    from renamed

)

select * from final
